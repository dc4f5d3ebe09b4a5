// Validate one .glb/.gltf file with the Khronos glTF validator; print its report as JSON.
const fs = require("fs");
const validator = require("gltf-validator");

const file = process.argv[2];
validator
  .validateBytes(new Uint8Array(fs.readFileSync(file)), { maxIssues: 100 })
  .then((report) => console.log(JSON.stringify(report)))
  .catch((err) => {
    console.error(String(err));
    process.exit(1);
  });
