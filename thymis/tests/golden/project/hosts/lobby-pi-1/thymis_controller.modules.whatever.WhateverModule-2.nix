{ pkgs, lib, inputs, config, ... }:
{
networking.firewall.allowedTCPPorts = [ 8080 ];
}
