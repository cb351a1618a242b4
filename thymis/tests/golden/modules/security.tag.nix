{ pkgs, lib, inputs, config, ... }:
{
  users.users.root.openssh.authorizedKeys.keys = [
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMq8yJf3c9Zt1pXo6Hq3v0Wb2Lr5sNd7eKa4Tg1uYc0p signage@lobby"
  ];
  thymis.config.authorized-keys = lib.mkOverride 90 [
    {
      key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMq8yJf3c9Zt1pXo6Hq3v0Wb2Lr5sNd7eKa4Tg1uYc0p signage@lobby";
    }
  ];
}
