/** The SCRAM-SHA-256 client of `examples/scram.ts` against RFC 7677's example and our test server. */
import assert from "node:assert/strict";
import { ScramClient } from "../examples/scram.ts";
import { ScramServer } from "./scram_server.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

Deno.test("SCRAM-SHA-256: the client reproduces the exchange of RFC 7677 section 3", async () => {
  const scram = new ScramClient("user", "pencil", "rOprNGfwEbeRWgbNEkqO");
  assert.equal(dec.decode(scram.first()), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
  const serverFirst =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
  const final = await scram.final(enc.encode(serverFirst));
  assert.equal(
    dec.decode(final),
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0," +
      "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
  );
  assert.ok(scram.verify(enc.encode("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")));
  assert.ok(!scram.verify(enc.encode("v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")));
});

Deno.test("SCRAM-SHA-256: client and test server agree; a wrong password or nonce fails", async () => {
  const server = new ScramServer("alice", "secret", "xyz", 64);
  const good = new ScramClient("alice", "secret");
  const serverFinal = await server.final(await good.final(server.first(good.first())));
  assert.ok(serverFinal !== undefined);
  assert.ok(good.verify(serverFinal));

  const other = new ScramServer("alice", "secret", "xyz", 64);
  const bad = new ScramClient("alice", "wrong");
  assert.equal(await other.final(await bad.final(other.first(bad.first()))), undefined);

  const replay = new ScramClient("alice", "secret", "abc");
  replay.first();
  await assert.rejects(replay.final(enc.encode("r=zzz,s=AAAA,i=1")), /nonce/);
});
