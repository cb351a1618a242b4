{ pkgs, lib, inputs, config, ... }:
{
  systemd.tmpfiles.rules = [
    "C+ /var/lib/signage/Willkommen\\x20im\\x20Foyer.png 0644 kiosk users - ${pkgs.copyPathToStore (inputs.self + "/artifacts/welcome-screen.png")}"
    "C+ / - - - - ${pkgs.copyPathToStore (inputs.self + "/artifacts/playlist.m3u")}"
  ];
}
