{ pkgs, lib, inputs, config, ... }:
{
  networking.timeServers = lib.mkOverride 90 [
    "ptbtime1.ptb.de"
  ];
  time.timeZone = lib.mkOverride 90 "Europe/Berlin";
}
