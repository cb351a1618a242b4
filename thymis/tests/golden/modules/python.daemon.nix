{ pkgs, lib, inputs, config, ... }:
{
  systemd.services.thymis-python-service-hosts-lobby-pi-1 = let
    pythonScript = pkgs.writers.writePython3 "thymis-python-service-hosts-lobby-pi-1-script" {
      libraries = [
        pkgs.python3Packages.paho-mqtt
      ];
    } ''
      import time

      while True:
          time.sleep(1)
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
