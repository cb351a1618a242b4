{ pkgs, lib, inputs, config, ... }:
{
  systemd.tmpfiles.rules = [
    "C+ /etc/app/logo.png 0644 - - - ${pkgs.copyPathToStore (inputs.self + "/artifacts/logo.png")}"
  ];
}
