{ pkgs, lib, inputs, config, ... }:
{
  systemd.services.thymis-bash-service-hosts-lobby-pi-1 = {
    script = ''
      #!/usr/bin/env bash
      echo "Hallo ''${USER:-niemand}, Grüße!"
      printf '%s\n' '''double''' 'single'
      curl -fsS https://example.com | jq '.items[]'
    '';
    path = [
      pkgs.curl
      pkgs.jq
      pkgs.nodePackages.pnpm
    ];
    serviceConfig = {
      Type = "oneshot";
    };
  };
  systemd.timers.thymis-bash-service-hosts-lobby-pi-1 = {
    wantedBy = [
      "timers.target"
    ];
    timerConfig = {
      OnCalendar = [
        "Mon..Fri *-*-* 08:00:00"
        "Sat,Sun *-*-* 10:00:00"
      ];
      Persistent = true;
      RandomizedDelaySec = "5min";
    };
  };
}
