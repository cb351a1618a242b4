{ pkgs, lib, inputs, config, ... }:
{
  systemd.services.thymis-bash-service-hosts-kitchen-vm = {
    script = ''
      echo "backup at $(date)" >> /var/log/backup.log
    '';
    path = [
      pkgs.coreutils
    ];
    serviceConfig = {
      Type = "oneshot";
    };
  };
  systemd.timers.thymis-bash-service-hosts-kitchen-vm = {
    wantedBy = [
      "timers.target"
    ];
    timerConfig = {
      OnCalendar = [
        "*-*-* 03:00:00"
        "Sat *-*-* 12:00:00"
      ];
      Persistent = true;
    };
  };
}
