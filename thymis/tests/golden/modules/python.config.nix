{ pkgs, lib, inputs, config, ... }:
{
  systemd.services.thymis-python-service-hosts-lobby-pi-1 = let
    pythonScript = pkgs.writers.writePython3 "thymis-python-service-hosts-lobby-pi-1-script" {
      libraries = [
        pkgs.python3Packages.requests
        pkgs.python3Packages.paho-mqtt
      ];
    } ''
      import requests


      def main():
          print(f"Grüße {requests.__version__}")
          print(''''triple ''${x} "quoted"'''')


      main()
    '';
  in
  {
    path = [
      pkgs.ffmpeg
      pkgs.git
    ];
    serviceConfig = {
      ExecStart = "${pythonScript}";
      Type = "oneshot";
    };
  };
  systemd.timers.thymis-python-service-hosts-lobby-pi-1 = {
    wantedBy = [
      "timers.target"
    ];
    timerConfig = {
      OnCalendar = [
        "*-*-* 06:00:00"
        "*-*-* 18:00:00"
      ];
      AccuracySec = "1min";
    };
  };
}
