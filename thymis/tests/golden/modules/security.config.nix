{ pkgs, lib, inputs, config, ... }:
{
  users.users.root.hashedPasswordFile = "/run/thymis/root_password_hash";
  users.users.root.openssh.authorizedKeys.keys = [
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHx3mPDhX0p9Yd0lq6Rr1n7f1wVJw3bBzG2qvQnq5sZb jürgen@büro"
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFdM2fS5b4s8kQp2R0uC8C0xvR8m5n3rJ1yHq2w7pL4t \"ci \${runner}\""
  ];
  security.pki.certificates = [
    ''
      -----BEGIN CERTIFICATE-----
      MIIBszCCAVmgAwIBAgIUUc2R0oFm1x1Sx5yHkJq0H3Vd6WgwCgYIKoZIzj0EAwIw
      LzEtMCsGA1UEAwwkTG9iYnkgUm9vdCBDQSDigJMgRsO2cnN0ZXIgJiBTw7ZobmUw
      -----END CERTIFICATE-----
    ''
  ];
  thymis.config.authorized-keys = lib.mkOverride 80 [
    {
      key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHx3mPDhX0p9Yd0lq6Rr1n7f1wVJw3bBzG2qvQnq5sZb jürgen@büro";
    }
    {
      key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFdM2fS5b4s8kQp2R0uC8C0xvR8m5n3rJ1yHq2w7pL4t \"ci \${runner}\"";
    }
  ];
}
