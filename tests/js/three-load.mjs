// Load one .glb with three.js's own GLTFLoader in Node and print what a three.js app would get, as JSON.
// Node has no DOM: images are decoded by a stand-in createImageBitmap that reads the PNG's size, so
// the loader takes its normal ImageBitmap path and builds real textures around them.
import fs from "node:fs";
import * as THREE from "three";
import { GLTFLoader } from "three/examples/jsm/loaders/GLTFLoader.js";

globalThis.self = globalThis;
globalThis.createImageBitmap = async (blob) => {
  const bytes = new Uint8Array(await blob.arrayBuffer());
  const png = bytes[0] === 0x89 && bytes[1] === 0x50;
  const view = new DataView(bytes.buffer);
  return { width: png ? view.getUint32(16) : 0, height: png ? view.getUint32(20) : 0, png, close() {} };
};

const file = process.argv[2];
const data = fs.readFileSync(file);
const buffer = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
new GLTFLoader().parse(buffer, "", (gltf) => {
  const meshes = [];
  gltf.scene.traverse((o) => { if (o.isMesh) meshes.push(o); });
  const facts = meshes.map((m) => {
    const map = m.material.map;
    const box = new THREE.Box3().setFromObject(m);
    return {
      attributes: Object.keys(m.geometry.attributes).sort(),
      vertices: m.geometry.attributes.position.count,
      material: m.material.type,
      side: m.material.side === THREE.DoubleSide ? "double" : "front",
      flatShading: m.material.flatShading,
      metalness: m.material.metalness,
      roughness: m.material.roughness,
      map: map ? { width: map.image.width, height: map.image.height, png: map.image.png, colorSpace: map.colorSpace } : null,
      min: box.min.toArray(), max: box.max.toArray(),
    };
  });
  console.log(JSON.stringify({ meshes: facts }));
}, (err) => { console.error(String(err && err.message || err)); process.exit(1); });
