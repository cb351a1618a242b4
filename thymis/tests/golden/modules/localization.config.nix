{ pkgs, lib, inputs, config, ... }:
{
  networking.timeServers = lib.mkOverride 80 [
    "ntp.lobby.example"
    "ptbtime1.ptb.de"
  ];
  time.timeZone = lib.mkOverride 80 "America/Argentina/Buenos_Aires";
}
