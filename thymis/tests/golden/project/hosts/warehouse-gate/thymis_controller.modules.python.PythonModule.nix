{ pkgs, lib, inputs, config, ... }:
{
  systemd.services.thymis-python-service-hosts-warehouse-gate = let
    pythonScript = pkgs.writers.writePython3 "thymis-python-service-hosts-warehouse-gate-script" {
      libraries = [
        pkgs.python3Packages.requests
      ];
    } ''
      import time
      while True:
          print('tick')
          time.sleep(5)
    '';
  in
  {
    path = [ ];
    wantedBy = [
      "multi-user.target"
    ];
    serviceConfig = {
      ExecStart = "${pythonScript}";
      Type = "simple";
      Restart = "always";
      RestartSec = "10s";
    };
  };
}
