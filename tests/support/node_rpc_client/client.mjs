// A Connect-ES client (npm @connectrpc/connect-node) of meshgate.test.v1.EchoService,
// with the messages taken at run time from a FileDescriptorSet (no generated code):
//
//   node client.mjs echo.pb http://127.0.0.1:PORT connect|grpc-web|grpc 1.1|2
//
// Prints one JSON line: the unary reply, the server stream, and an error's code.
import { readFileSync } from "node:fs";
import { fromBinary, createFileRegistry } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { createClient, ConnectError } from "@connectrpc/connect";
import { createGrpcWebTransport, createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";

const [, , pbPath, baseUrl, protocol, httpVersion] = process.argv;
const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(pbPath)));
const service = registry.getService("meshgate.test.v1.EchoService");
const options = { baseUrl, httpVersion };
const transport =
  protocol === "grpc-web" ? createGrpcWebTransport(options)
  : protocol === "connect" ? createConnectTransport(options)
  : createGrpcTransport(options);
const client = createClient(service, transport);
const out = {};
const reply = await client.echo({ message: "node", tags: ["a"] }, { headers: { "x-from": "node" } });
out.unary = reply.request.message;
out.stream = [];
for await (const item of client.serverStream({ message: "s", tags: ["1", "2", "3"] })) {
  out.stream.push(item.request.message);
}
try {
  await client.echo({ failCode: 7, failMessage: "not yours" });
} catch (error) {
  const e = ConnectError.from(error);
  out.error = { code: e.code, message: e.rawMessage };
}
console.log(JSON.stringify(out));
