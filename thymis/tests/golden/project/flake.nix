{
  description = "Thymis";
  inputs = {
    thymis.url = "github:thymis-io/thymis/v0.9";
    nixpkgs.follows = "thymis/nixpkgs";
    acme_modules.url = "git+https://git.example.com/acme/thymis-modules.git?ref=main";
    acme_modules.inputs.nixpkgs.follows = "nixpkgs";
    acme_modules.inputs.thymis.follows = "thymis";
    extra-tools.url = "github:example/extra-tools/v1.2";
  };
  outputs = inputs@{ self, thymis, nixpkgs, acme_modules, extra-tools, ... }:
  let
    lib = nixpkgs.lib;
    state = builtins.fromJSON (builtins.readFile ./state.json);
    nixFilesIn = dir: lib.mapAttrsToList (name: type: dir + "/${name}") (lib.filterAttrs (name: type: type == "regular" && lib.hasSuffix ".nix" name) (builtins.readDir dir));
    toNixosConfiguration = config: {
      name = config.identifier;
      value = lib.nixosSystem {
        modules = nixFilesIn (./hosts + "/${config.identifier}") ++ builtins.concatMap (tag: nixFilesIn (./tags + "/${tag}")) config.tags ++ [
          thymis.nixosModules.thymis-device
        ];
        specialArgs = {
          inherit inputs;
        };
      };
    };
    nixosConfigurations = builtins.listToAttrs (builtins.map toNixosConfiguration (builtins.filter (config: config.identifier != "") state.configs));
  in
  {
    nixosConfigurations = nixosConfigurations;
    packages = lib.genAttrs [
      "x86_64-linux"
      "aarch64-linux"
    ] (system: {
      thymis = (builtins.getAttr system nixpkgs.legacyPackages).writeText "thymis.json" (builtins.toJSON (builtins.mapAttrs (name: nixos: nixos.config.system.build.toplevel) nixosConfigurations));
    });
    inputs = inputs;
  };
}
