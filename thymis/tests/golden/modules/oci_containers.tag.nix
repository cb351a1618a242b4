{ pkgs, lib, inputs, config, ... }:
{
  virtualisation.podman = lib.mkOverride 90 {
    enable = true;
    autoPrune.enable = true;
    dockerCompat = true;
    defaultNetwork.settings.dns_enabled = true;
  };
  virtualisation.oci-containers.backend = lib.mkOverride 90 "podman";
  virtualisation.oci-containers.containers.signage = lib.mkOverride 90 {
    image = "ghcr.io/example/signage:latest";
    log-driver = "journald";
  };
}
