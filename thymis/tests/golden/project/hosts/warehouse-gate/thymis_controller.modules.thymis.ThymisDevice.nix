{ pkgs, lib, inputs, config, ... }:
{
  imports = [
    inputs.thymis.nixosModules.thymis-device-raspberry-pi-5
    inputs.thymis.nixosModules.thymis-image-sd-card-image
  ];
  thymis.config.agent.controller-url = lib.mkOverride 100 "https://thymis.example.com";
  thymis.config.device-type = lib.mkOverride 80 "raspberry-pi-5";
}
