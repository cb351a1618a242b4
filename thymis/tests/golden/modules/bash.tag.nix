{ pkgs, lib, inputs, config, ... }:
{
  systemd.services.thymis-bash-service-tags-lobby-screens = {
    script = ''
      logger -t lobby "tag ''${TAG:-lobby-screens} check"
    '';
    path = [ ];
    serviceConfig = {
      Type = "oneshot";
    };
  };
  systemd.timers.thymis-bash-service-tags-lobby-screens = {
    wantedBy = [
      "timers.target"
    ];
    timerConfig = {
      OnBootSec = "5min";
      OnUnitActiveSec = "1h";
      AccuracySec = "1s";
    };
  };
}
