{ pkgs, lib, inputs, config, ... }:
{
  networking.nameservers = lib.mkOverride 90 [
    "1.1.1.1"
    "9.9.9.9"
  ];
  thymis.config.wifi-ssid = lib.mkOverride 90 "Lobby-Gäste";
  thymis.config.wifi-password = lib.mkOverride 90 "";
}
