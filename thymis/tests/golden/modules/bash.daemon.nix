{ pkgs, lib, inputs, config, ... }:
{
  systemd.services.thymis-bash-service-hosts-lobby-pi-1 = {
    script = ''
      while true; do
        date >> /var/log/heartbeat
        sleep 60
      done
    '';
    path = [
      pkgs.git
    ];
    wantedBy = [
      "multi-user.target"
    ];
    serviceConfig = {
      Type = "simple";
      Restart = "always";
      RestartSec = "10s";
    };
  };
}
