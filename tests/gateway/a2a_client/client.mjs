// A real A2A client (the official @a2a-js/sdk, with its A2A 0.3 compatibility layer) against
// asya-gateway's agent card and /a2a. Usage: node client.mjs <gateway url> <step>
// Steps: card, send (returns at once), sendwait (blocking), stream, bad, get <task id>, cancel <task id>, resubscribe <task id>.
// Prints one JSON line per observation; test_a2a.py plays the actors meanwhile.
import {
  ClientFactory,
  ClientFactoryOptions,
  DefaultAgentCardResolver,
  JsonRpcTransportFactory,
} from "@a2a-js/sdk/client";

const [base, step, arg] = process.argv.slice(2);
const print = (o) => console.log(JSON.stringify(o));
const factory = new ClientFactory({
  ...ClientFactoryOptions.default,
  transports: [new JsonRpcTransportFactory({ legacyCompat: { enabled: true } })],
  cardResolver: new DefaultAgentCardResolver({ legacyCompat: { enabled: true } }),
});
const client = await factory.createFromUrl(base);
// The SDK's own (A2A 1.0) message shape; its compatibility layer sends it as A2A 0.3.
const message = (text, skill, returnImmediately = true) => ({
  message: {
    messageId: crypto.randomUUID(),
    role: 1, // ROLE_USER
    parts: [{ content: { $case: "data", value: { text } }, filename: "", mediaType: "" }],
    metadata: { skill },
  },
  configuration: { returnImmediately },
});
try {
  if (step === "card") {
    print({ card: await new DefaultAgentCardResolver({ legacyCompat: { enabled: true } }).resolve(base) });
  } else if (step === "send") {
    print({ sent: await client.sendMessage(message(arg ?? "hello", "echo")) });
  } else if (step === "sendwait") {
    print({ sent: await client.sendMessage(message(arg ?? "hello", "echo", false)) });
  } else if (step === "stream") {
    for await (const event of client.sendMessageStream(message(arg ?? "streamed", "echo"))) print({ event });
  } else if (step === "get") {
    print({ task: await client.getTask({ id: arg }) });
  } else if (step === "cancel") {
    print({ cancelled: await client.cancelTask({ id: arg }) });
  } else if (step === "resubscribe") {
    for await (const event of client.resubscribeTask({ id: arg })) print({ event });
  } else if (step === "bad") {
    print({ sent: await client.sendMessage(message(5, "echo")) });
  }
  print({ done: true });
} catch (error) {
  print({ error: { name: error?.constructor?.name, code: error?.code, message: String(error?.message ?? error) } });
}
