{ pkgs, lib, inputs, config, ... }:
{
services.openssh.settings.PasswordAuthentication = false;
environment.etc."motd".text = ''
  Welcome to ${config.networking.hostName}
'';
}
