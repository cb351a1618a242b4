{ pkgs, lib, inputs, config, ... }:
{
  services.xserver.enable = lib.mkOverride 90 true;
  services.displayManager.sddm.enable = lib.mkOverride 90 true;
  services.displayManager.autoLogin.enable = lib.mkOverride 90 true;
  services.displayManager.autoLogin.user = lib.mkOverride 90 "thymiskiosk";
  users.users.thymiskiosk = lib.mkOverride 90 {
    isNormalUser = true;
    createHome = true;
  };
  services.pipewire.enable = false;
  hardware.pulseaudio.enable = true;
  hardware.pulseaudio.support32Bit = true;
  services.xserver.windowManager.i3.enable = lib.mkOverride 90 true;
  services.xserver.windowManager.i3.configFile = lib.mkOverride 90 (let
    displaySetup = pkgs.writeShellScript "thymis-kiosk-display" ''
      # Sets the configured mode and rotation on HDMI-1, and again after every screen change
      # (display power cycle, KVM switch), which resets the output to its default mode.
      xrandr=${pkgs.xorg.xrandr}/bin/xrandr
      output=HDMI-1
      sleep 2
      # The mode may be missing from what the firmware offers (a Raspberry Pi can pick the wrong
      # HDMI group), so a CVT modeline is computed and registered for it.
      modeline=$(${pkgs.libxcvt}/bin/cvt 1920 1080 60 | grep -i '^modeline')
      mode_name=$(printf '%s\n' "$modeline" | cut -d '"' -f 2)
      mode_timings=$(printf '%s\n' "$modeline" | cut -d '"' -f 3-)
      "$xrandr" --newmode "$mode_name" $mode_timings 2>/dev/null || true
      apply_mode() {
        "$xrandr" --addmode "$output" "$mode_name" 2>/dev/null || true
        "$xrandr" --output "$output" --rotate 'normal' 2>/dev/null || true
        "$xrandr" --output "$output" --mode "$mode_name" 2>/dev/null || true
      }
      apply_mode
      ${pkgs.xorg.xev}/bin/xev -root -event randr | grep --line-buffered RRScreenChangeNotify | while read -r _; do
        sleep 1
        apply_mode
      done
    '';
    audioSetup = pkgs.writeShellScript "thymis-kiosk-audio" ''
      ${pkgs.pamixer}/bin/pamixer --set-volume 100
    '';
    browser = pkgs.writeShellScript "thymis-kiosk-browser" ''
      url='https://dashboard.example.com/?screen=lobby&theme="dark"'
      chromium=${pkgs.ungoogled-chromium}/bin/chromium
      killall=${pkgs.killall}/bin/killall
      prefs="$HOME/.config/chromium/Default/Preferences"
      # A session that did not end cleanly leaves a profile lock that stops Chromium from starting.
      "$killall" chromium 2>/dev/null
      rm -rf "$HOME"/.config/chromium/Singleton*
      mkdir -p "$(dirname "$prefs")"
      [ -s "$prefs" ] || echo '{}' > "$prefs"
      # Never offer to translate German pages.
      ${pkgs.jq}/bin/jq '.translate_blocked_languages = ((.translate_blocked_languages // []) + ["de"] | unique)' "$prefs" > "$prefs.tmp" && mv "$prefs.tmp" "$prefs"
      # A loading page covers the desktop while the network and the site come up.
      "$chromium" --app='data:text/html,<html><body><h1>Loading...</h1></body></html>' &
      sleep 30
      "$killall" chromium
      sleep 3
      until ${pkgs.curl}/bin/curl --fail --silent --max-time 10 --head "$url" > /dev/null; do
        sleep 3
      done
      sleep 1
      exec "$chromium" --app="$url" ${lib.optionalString (pkgs.stdenv.system == "aarch64-linux") "--disable-gpu "}--disable-features=Translate --hide-scrollbars
    '';
    vncServer = pkgs.writeShellScript "thymis-kiosk-vnc" ''
      # The password file is rewritten at every session start, so a new password applies.
      umask 077
      mkdir -p "$HOME/tigervnc"
      printf '%s\n' 'pa'\'''ss' | ${pkgs.tigervnc}/bin/vncpasswd -f > "$HOME/tigervnc/passwd"
      exec ${pkgs.tigervnc}/bin/x0vncserver -display :0 -PasswordFile="$HOME/tigervnc/passwd"
    '';
  in
  pkgs.writeText "i3-config" ''
    # i3 config file (v4)
    # Kiosk session: one fullscreen browser window, no bar, no borders, no screen blanking.
    bar {
        mode invisible
    }
    new_window pixel 0
    new_float pixel 0
    exec ${displaySetup}
    exec /run/current-system/sw/bin/xset s off
    exec /run/current-system/sw/bin/xset -dpms
    exec ${pkgs.unclutter}/bin/unclutter
    exec ${audioSetup}
    exec ${vncServer}
    exec ${browser}
  '');
  systemd.services.display-manager.restartIfChanged = lib.mkOverride 90 true;
  systemd.services.display-manager.environment.NONCE = lib.mkOverride 90 "9114c5d5722f51f082cee1344e48d2ef412a6914d4ff1681dcac4d646c33cf06";
  system.activationScripts.restart-display-manager-thymis = {
    supportsDryActivation = true;
    text = ''
      mkdir -p /run/nixos
      if [ "$NIXOS_ACTION" != dry-activate ]; then
        echo display-manager.service >> /run/nixos/activation-restart-list
      else
        echo display-manager.service >> /run/nixos/dry-activation-restart-list
      fi
    '';
  };
}
