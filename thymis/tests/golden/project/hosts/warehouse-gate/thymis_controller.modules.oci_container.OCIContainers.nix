{ pkgs, lib, inputs, config, ... }:
{
  virtualisation.podman = lib.mkOverride 80 {
    enable = true;
    autoPrune.enable = true;
    dockerCompat = true;
    defaultNetwork.settings.dns_enabled = true;
  };
  virtualisation.oci-containers.backend = lib.mkOverride 80 "podman";
  virtualisation.oci-containers.containers.gate-app = lib.mkOverride 80 {
    image = "ghcr.io/example/gate:1.4";
    environment = {
      GREETING = "Hello \"\${USER}\"";
    };
    ports = [
      "8080:80"
    ];
    log-driver = "journald";
  };
}
