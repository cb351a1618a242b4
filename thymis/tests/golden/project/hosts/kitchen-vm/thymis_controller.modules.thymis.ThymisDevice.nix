{ pkgs, lib, inputs, config, ... }:
{
  imports = [
    inputs.thymis.nixosModules.thymis-device-generic-x86_64
    inputs.thymis.nixosModules.thymis-image-usb-stick-installer
  ];
  thymis.config.agent.controller-url = lib.mkOverride 80 "https://thymis.example.com";
  thymis.config.device-type = lib.mkOverride 80 "generic-x86_64";
}
