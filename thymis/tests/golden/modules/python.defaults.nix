{ pkgs, lib, inputs, config, ... }:
{
  systemd.services.thymis-python-service-tags-lobby-screens = let
    pythonScript = pkgs.writers.writePython3 "thymis-python-service-tags-lobby-screens-script" {
      libraries = [ ];
    } "";
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
