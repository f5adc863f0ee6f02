{
  description = "coco-secure-access: the mTLS secure-access sidecar for Confidential Containers pods";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f system nixpkgs.legacyPackages.${system});
      packageJson = builtins.fromJSON (builtins.readFile ./package.json);

      # package-lock.json is written with npm's `omit-lockfile-registry-resolved`, so
      # its entries carry `integrity` but no `resolved` URL, and importNpmLock fetches
      # only what has one. Put back the npm registry's tarball URL, as npm itself does.
      withRegistryUrls =
        lock:
        let
          inherit (nixpkgs) lib;
          tarball =
            path: module:
            let
              name = module.name or (lib.last (lib.splitString "node_modules/" path));
              file = lib.last (lib.splitString "/" name);
            in
            "https://registry.npmjs.org/${name}/-/${file}-${module.version}.tgz";
        in
        lock
        // {
          packages = lib.mapAttrs (
            path: module:
            if path == "" || module ? resolved || module ? link || !(module ? integrity) then
              module
            else
              module // { resolved = tarball path module; }
          ) lock.packages;
        };
    in
    {
      packages = forAllSystems (
        system: pkgs:
        let
          inherit (pkgs) lib;
          # The build runs scripts/build.ts directly: Node 24 strips the types itself.
          nodejs = pkgs.nodejs_24;
          sidecar = pkgs.buildNpmPackage {
            pname = packageJson.name;
            inherit (packageJson) version;
            inherit nodejs;

            src = lib.fileset.toSource {
              root = ./.;
              fileset = lib.fileset.unions [
                ./package.json
                ./package-lock.json
                ./tsconfig.json
                ./scripts
                ./src
              ];
            };

            # Every dependency is fetched by its integrity hash from package-lock.json:
            # no hand-maintained npmDepsHash to update.
            npmDeps = pkgs.importNpmLock {
              npmRoot = ./.;
              packageLock = withRegistryUrls (lib.importJSON ./package-lock.json);
            };
            npmConfigHook = pkgs.importNpmLock.npmConfigHook;
            # No install scripts (as the Dockerfile's `npm ci --ignore-scripts`): esbuild's
            # only speeds up its CLI, and the build uses its JS API.
            npmRebuildFlags = [ "--ignore-scripts" ];

            nativeBuildInputs = [ pkgs.makeWrapper ];

            buildPhase = ''
              runHook preBuild
              node scripts/build.ts
              runHook postBuild
            '';

            # dist/main.js is self-contained (esbuild inlines every dependency),
            # so neither node_modules nor the 11 MiB source map is installed.
            installPhase = ''
              runHook preInstall
              install -Dm644 dist/main.js -t $out/lib/coco-secure-access
              echo '{"type":"module"}' > $out/lib/coco-secure-access/package.json
              makeWrapper ${lib.getExe nodejs} $out/bin/coco-secure-access \
                --add-flags $out/lib/coco-secure-access/main.js
              runHook postInstall
            '';

            meta = {
              description = packageJson.description;
              license = lib.licenses.asl20;
              mainProgram = "coco-secure-access";
              platforms = systems;
            };
          };
        in
        {
          default = sidecar;
          coco-secure-access = sidecar;
        }
      );

      apps = forAllSystems (
        system: _pkgs: {
          default = {
            type = "app";
            program = "${self.packages.${system}.default}/bin/coco-secure-access";
          };
        }
      );

      devShells = forAllSystems (
        _system: pkgs: {
          default = pkgs.mkShell {
            packages = [
              pkgs.nodejs_24
              pkgs.gnumake
              pkgs.openssl
              pkgs.curl
            ];
          };
        }
      );
    };
}
