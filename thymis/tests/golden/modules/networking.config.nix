{ pkgs, lib, inputs, config, ... }:
{
  networking.interfaces.eth0 = lib.mkOverride 80 {
    ipv4.addresses = [
      {
        address = "192.168.10.21";
        prefixLength = 24;
      }
      {
        address = "192.168.10.22";
        prefixLength = 24;
      }
    ];
    ipv6.addresses = [
      {
        address = "fd00:10::21";
        prefixLength = 64;
      }
    ];
  };
  networking.interfaces."eth0.100" = lib.mkOverride 80 {
    ipv4.addresses = [
      {
        address = "10.100.0.5";
        prefixLength = 16;
      }
    ];
  };
  networking.defaultGateway = lib.mkOverride 80 {
    address = "192.168.10.1";
    interface = "eth0";
  };
  networking.defaultGateway6 = lib.mkOverride 80 {
    address = "fd00:10::1";
    interface = "eth0";
  };
  networking.nameservers = lib.mkOverride 80 [
    "192.168.10.1"
    "2606:4700:4700::1111"
  ];
  thymis.config.wifi-ssid = lib.mkOverride 80 "Café \"Foyer\" \${guest}";
  thymis.config.wifi-password = lib.mkOverride 80 "pa\"ss\\word\${x}";
  thymis.config.wifi-auth = lib.mkOverride 80 ''
    eap=PEAP
    identity="empfang@example.com"
    password="Grüße ''${HOME}"
    ca_file="/etc/ssl/certs/ca-certificates.crt"
  '';
  thymis.config.wifi-auth-protocols = lib.mkOverride 80 [
    {
      protocol = "WPA-EAP";
    }
    {
      protocol = "SAE";
    }
    {
      protocol = "WPA-PSK";
    }
  ];
}
