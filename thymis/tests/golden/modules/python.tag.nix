{ pkgs, lib, inputs, config, ... }:
{
  systemd.services.thymis-python-service-tags-lobby-screens = let
    pythonScript = pkgs.writers.writePython3 "thymis-python-service-tags-lobby-screens-script" {
      libraries = [ ];
    } ''
      print('tag')
    '';
  in
  {
    path = [ ];
    serviceConfig = {
      ExecStart = "${pythonScript}";
      Type = "oneshot";
    };
  };
  systemd.timers.thymis-python-service-tags-lobby-screens = {
    wantedBy = [
      "timers.target"
    ];
    timerConfig = {
      OnBootSec = "30s";
      OnUnitActiveSec = "15min";
    };
  };
}
