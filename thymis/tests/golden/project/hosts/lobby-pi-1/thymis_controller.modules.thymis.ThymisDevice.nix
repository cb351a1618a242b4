{ pkgs, lib, inputs, config, ... }:
{
  imports = [
    inputs.thymis.nixosModules.thymis-device-raspberry-pi-4
    inputs.thymis.nixosModules.thymis-image-sd-card-image
  ];
  thymis.config.agent.controller-url = lib.mkOverride 100 "https://thymis.example.com";
  thymis.config.device-name = lib.mkOverride 80 "lobby-pi-1";
  thymis.config.device-type = lib.mkOverride 80 "raspberry-pi-4";
  thymis.config.image-format = lib.mkOverride 80 "sd-card-image";
  system.stateVersion = lib.mkOverride 80 "26.05";
}
