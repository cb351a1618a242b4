{ pkgs, lib, inputs, config, ... }:
{
  systemd.services.thymis-bash-service-tags-lobby-screens = {
    script = "";
    path = [ ];
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
