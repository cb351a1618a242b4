{ pkgs, lib, inputs, config, ... }:
{
  systemd.tmpfiles.rules = [
    "C+ /etc/motd.d/50-lobby-100%% 0444 - - - ${pkgs.copyPathToStore (inputs.self + "/artifacts/motd.txt")}"
  ];
}
