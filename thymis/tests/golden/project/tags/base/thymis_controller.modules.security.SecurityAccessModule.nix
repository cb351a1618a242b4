{ pkgs, lib, inputs, config, ... }:
{
  users.users.root.openssh.authorizedKeys.keys = [
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests admin@example"
  ];
  thymis.config.authorized-keys = lib.mkOverride 95 [
    {
      key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests admin@example";
    }
  ];
}
