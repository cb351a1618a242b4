{ pkgs, lib, inputs, config, ... }:
{
  virtualisation.podman = lib.mkOverride 80 {
    enable = true;
    autoPrune.enable = true;
    dockerCompat = true;
    defaultNetwork.settings.dns_enabled = true;
  };
  virtualisation.oci-containers.backend = lib.mkOverride 80 "podman";
}
