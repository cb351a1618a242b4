{ pkgs, lib, inputs, config, ... }:
{
  networking.timeServers = lib.mkOverride 90 [
    "0.de.pool.ntp.org"
    "1.de.pool.ntp.org"
  ];
  time.timeZone = lib.mkOverride 100 "Europe/Berlin";
}
