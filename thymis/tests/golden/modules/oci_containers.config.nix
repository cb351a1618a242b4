{ pkgs, lib, inputs, config, ... }:
{
  virtualisation.podman = lib.mkOverride 80 {
    enable = true;
    autoPrune.enable = true;
    dockerCompat = true;
    defaultNetwork.settings.dns_enabled = true;
  };
  virtualisation.oci-containers.backend = lib.mkOverride 80 "podman";
  virtualisation.oci-containers.containers.web = lib.mkOverride 80 {
    image = "docker.io/library/nginx:1.27";
    environment = {
      GREETING = ''
        ''${HOME}/data "quoted" '''two''' \backslash
        second line — ünïcode'';
      "my.dotted-key" = "Grüezi";
    };
    volumes = [
      "/var/lib/web:/usr/share/nginx/html"
      "/cache"
    ];
    ports = [
      "8080:80"
      "127.0.0.1:9443:443"
      "8081"
    ];
    labels = {
      "traefik.http.routers.web.rule" = "Host(`lobby.example.com`)";
    };
    log-driver = "journald";
  };
  virtualisation.oci-containers.containers."db.main" = lib.mkOverride 80 {
    image = "docker.io/library/postgres:16";
    environment = {
      POSTGRES_PASSWORD = "s3cr\"et'";
    };
    log-driver = "journald";
  };
}
