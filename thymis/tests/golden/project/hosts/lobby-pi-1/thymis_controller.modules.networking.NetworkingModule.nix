{ pkgs, lib, inputs, config, ... }:
{
  networking.nameservers = lib.mkOverride 80 [
    "9.9.9.9"
  ];
  thymis.config.wifi-ssid = lib.mkOverride 80 "corp \"guest\"";
  thymis.config.wifi-password = lib.mkOverride 80 "hunter2\${x}";
}
