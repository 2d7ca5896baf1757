// Compares scenario.mjs's documents from rill and from kinesalite. They must agree everywhere
// except at the known differences below, each of which must show exactly the values listed (so a
// difference that changes is reported) and must still occur (so the list stays true).
// known_differences.md says the same in prose.
//
// Usage: node compare.mjs RILL_JSON KINESALITE_JSON
// Exits 0 when they agree; otherwise prints every difference (path, rill's value, kinesalite's)
// and exits 1.
import { readFileSync } from "node:fs";

// Each known difference: `paths`, "/"-separated keys from the document's root ("*" matches any
// one key), where the whole value is compared; `rill` and `kinesalite`, the values each endpoint
// must show there (omitted: any), or `check(rill, kinesalite)` for a shape; `reason`, one line.
const shard = (id, start, end, closed, parent = null, adjacent = null) => ({
  ShardId: id, ParentShardId: parent, AdjacentParentShardId: adjacent,
  HashKeyRange: { StartingHashKey: start, EndingHashKey: end },
  hasStartingSequenceNumber: true, hasEndingSequenceNumber: closed,
});
const HALF = "170141183460469231731687303715884105727";
const FIRST = shard("shardId-000000000000", "0", HALF, false);
const SECOND = shard("shardId-000000000001", "170141183460469231731687303715884105728",
                     "340282366920938463463374607431768211455", false);

export const KNOWN_DIFFERENCES = [
  // rill's documented departures from Kinesis (docs/departures.md).
  {
    name: "rill: no CREATING phase",
    // kinesalite's side is a state it holds for 1 s: on a machine slow enough it is over before
    // the describe, so the difference may not show (never stale); rill's side is exact.
    sometimes: true,
    paths: ["createStatus"],
    rill: "ACTIVE",
    kinesalite: "CREATING",
    reason: "rill's streams are ACTIVE as soon as CreateStream returns (docs/departures.md, On the " +
            "wire: fixed fields); Kinesis and kinesalite report CREATING first (kinesalite 500 ms)",
  },
  {
    name: "rill: no DELETING phase",
    // kinesalite's side is a state it holds for 1 s: on a machine slow enough it is over before
    // the describe, so the difference may not show (never stale); rill's side is exact.
    sometimes: true,
    paths: ["deleteStatus"],
    rill: "ResourceNotFoundException",
    kinesalite: "DELETING",
    reason: "rill removes a stream inside DeleteStream (docs/departures.md, On the wire: fixed " +
            "fields); Kinesis and kinesalite report DELETING until the deletion completes",
  },
  {
    name: "rill: resharding completes inside the call",
    // kinesalite's side is a state it holds for 1 s: on a machine slow enough it is over before
    // the describe, so the difference may not show (never stale); rill's side is exact.
    sometimes: true,
    paths: ["splitStatus"],
    rill: "ACTIVE at once",
    kinesalite: "UPDATING, then ACTIVE",
    reason: "rill's SplitShard returns with the children open and the stream ACTIVE " +
            "(update_duration 0, docs/departures.md); Kinesis and kinesalite report UPDATING a while",
  },
  {
    name: "rill: its own wording for non-adjacent shards",
    paths: ["errors/mergeNotAdjacent/message"],
    rill: "Shards shardId-000000000001 and shardId-000000000002 in stream js-sdk are not an " +
          "adjacent pair of shards eligible for merging",
    kinesalite: "Shards shardId-000000000001 and shardId-000000000002 in stream js-sdk under " +
                "account 000000000000 are not an adjacent pair of shards eligible for merging",
    reason: "same exception; rill's message names no account (docs/departures.md, On the wire: " +
            "error messages)",
  },
  // Where kinesalite 3.3.3 departs from Kinesis (rill follows Kinesis there).
  {
    name: "kinesalite: no EncryptionType in put results",
    paths: ["*/EncryptionType", "*/*/EncryptionType"],
    rill: "NONE",
    kinesalite: null,
    reason: "Kinesis' PutRecord and PutRecords results carry EncryptionType (NONE or KMS); " +
            "kinesalite predates server-side encryption",
  },
  {
    name: "kinesalite: no StreamModeDetails",
    paths: ["describeStreamSummary/StreamModeDetails"],
    rill: { StreamMode: "PROVISIONED" },
    kinesalite: null,
    reason: "Kinesis reports a stream's capacity mode (PROVISIONED or ON_DEMAND, since 2021); " +
            "kinesalite predates it",
  },
  {
    name: "kinesalite: no StreamSummaries in ListStreams",
    paths: ["listStreams/StreamSummaries"],
    rill: [{ StreamName: "js-sdk", StreamStatus: "ACTIVE", StreamModeDetails: { StreamMode: "PROVISIONED" },
             arnIsTheStreams: true, hasCreationTimestamp: true }],
    kinesalite: null,
    reason: "Kinesis' ListStreams returns StreamSummaries beside StreamNames; kinesalite predates them",
  },
  {
    name: "kinesalite: ListShards ignores MaxResults",
    paths: ["listShardsPaged"],
    rill: [{ shards: [FIRST], hasNextToken: true }, { shards: [SECOND], hasNextToken: false }],
    kinesalite: [{ shards: [FIRST, SECOND], hasNextToken: false }],
    reason: "kinesalite returns every shard in one page and never a NextToken (nor reads one); " +
            "Kinesis pages by MaxResults",
  },
  {
    name: "kinesalite: no ChildShards at a closed shard's end",
    paths: ["closedParent/ChildShards"],
    check: (rill, kinesalite) => Array.isArray(rill) && rill.length === 2 && kinesalite === null,
    reason: "Kinesis' GetRecords returns the children at a closed shard's end (since 2020), as " +
            "rill does; kinesalite predates ChildShards",
  },
  {
    name: "kinesalite: MillisBehindLatest at a closed shard's end",
    paths: ["closedParent/MillisBehindLatest"],
    check: (rill, kinesalite) => rill === 0 && Number.isInteger(kinesalite) && kinesalite > 0,
    reason: "kinesalite reports the time since the shard closed there (it varies); rill reports 0, " +
            "Kinesis' 'caught up' (the reader has every record the shard will ever have)",
  },
  {
    // Seen once in about fifteen runs on a loaded machine: kinesalite decides a closed shard's end
    // from the times encoded in its sequence numbers, so an iterator just after the last record
    // sometimes gets a NextShardIterator. Kinesis documents no NextShardIterator past a closed
    // shard's end, and rill gives none; kinesalite may go either way, so this one is never stale.
    name: "kinesalite: the end of a closed shard after its last record is timing-dependent",
    paths: ["closedParentAfterLast/reachedEnd"],
    sometimes: true,
    check: (rill, kinesalite) => rill === true && kinesalite === false,
    reason: "kinesalite judges a closed shard's end by time; Kinesis and rill always end it there",
  },
  {
    name: "kinesalite: splits a closed shard",
    paths: ["errors/splitClosedShard"],
    rill: {
      error: "InvalidArgumentException", httpStatus: 400, fault: "client",
      message: "Shard shardId-000000000000 in stream js-sdk has already been merged or split, " +
               "and thus is not eligible for merging or splitting",
    },
    kinesalite: { error: null },
    reason: "kinesalite checks only the hash key and reshards a closed shard again; Kinesis " +
            "refuses with InvalidArgumentException",
  },
  {
    name: "kinesalite: signatures are not checked",
    paths: ["auth/wrongSecret"],
    check: (rill, kinesalite) => rill.error === "InvalidSignatureException" && kinesalite.error === null,
    reason: "kinesalite accepts any signature; Kinesis and rill answer InvalidSignatureException",
  },
  {
    name: "kinesalite: access keys are not checked",
    paths: ["auth/unknownKey"],
    check: (rill, kinesalite) => rill.error === "UnrecognizedClientException" && kinesalite.error === null,
    reason: "kinesalite accepts any access key; Kinesis and rill answer UnrecognizedClientException",
  },
  {
    name: "kinesalite: no enhanced fan-out",
    paths: ["enhancedFanOut"],
    kinesalite: {
      RegisterStreamConsumer: {
        error: "UnknownOperationException", httpStatus: 400, fault: "client", message: "UnknownError",
      },
    },
    reason: "kinesalite has no consumer operations and no SubscribeToShard; scenario.mjs checks " +
            "rill's enhanced fan-out against what AWS documents instead",
  },
];

function usage() {
  console.error("usage: node compare.mjs RILL_JSON KINESALITE_JSON");
  process.exit(2);
}

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
function equal(a, b) {
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => equal(x, b[i]));
  if (isObject(a) && isObject(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    return [...keys].every((k) => equal(a[k], b[k]));
  }
  return a === b;
}
const matches = (pattern, path) => {
  const p = pattern.split("/");
  return p.length === path.length && p.every((seg, i) => seg === "*" || seg === path[i]);
};

export function compare(rill, kinesalite) {
  const unexpected = [];
  const seen = new Map(KNOWN_DIFFERENCES.map((k) => [k, 0]));
  const walk = (path, a, b) => {
    const known = KNOWN_DIFFERENCES.find((k) => k.paths.some((p) => matches(p, path)));
    if (known) {
      if (equal(a, b)) return;
      const fits = known.check ? known.check(a, b)
                               : (!("rill" in known) || equal(known.rill, a)) &&
                                 (!("kinesalite" in known) || equal(known.kinesalite, b));
      if (fits) {
        seen.set(known, seen.get(known) + 1);
      } else {
        unexpected.push({ path, rill: a, kinesalite: b, note: `not as the known difference "${known.name}" says` });
      }
      return;
    }
    if (isObject(a) && isObject(b)) {
      for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) walk([...path, k], a[k], b[k]);
    } else if (Array.isArray(a) && Array.isArray(b) && a.length === b.length) {
      a.forEach((x, i) => walk([...path, String(i)], x, b[i]));
    } else if (!equal(a, b)) {
      unexpected.push({ path, rill: a, kinesalite: b });
    }
  };
  const strip = ({ mode, ...rest }) => rest;
  walk([], strip(rill), strip(kinesalite));
  const stale = KNOWN_DIFFERENCES.filter((k) => seen.get(k) === 0 && !k.sometimes);
  return { unexpected, stale, ignored: KNOWN_DIFFERENCES.filter((k) => seen.get(k) > 0) };
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split("/").pop())) {
  const [rillFile, kinesaliteFile] = process.argv.slice(2);
  if (!rillFile || !kinesaliteFile) usage();
  const { unexpected, stale, ignored } = compare(JSON.parse(readFileSync(rillFile, "utf8")),
                                                 JSON.parse(readFileSync(kinesaliteFile, "utf8")));
  const show = (v) => (v === undefined ? "(absent)" : JSON.stringify(v));
  const summary = `compare: ${ignored.length} known differences seen: ${ignored.map((k) => k.name).join("; ")}`;
  for (const d of unexpected) {
    console.error(`compare: ${d.path.join("/") || "(root)"}${d.note ? ` (${d.note})` : ""}:\n` +
                  `  rill:       ${show(d.rill)}\n  kinesalite: ${show(d.kinesalite)}`);
  }
  for (const k of stale) {
    console.error(`compare: the known difference "${k.name}" (${k.paths.join(", ")}) no longer occurs: ` +
                  "remove it here and from known_differences.md");
  }
  if (unexpected.length > 0 || stale.length > 0) {
    console.error(summary);
    console.error(`compare: ${unexpected.length} unexpected differences, ${stale.length} stale known differences`);
    process.exit(1);
  }
  console.log(summary);
  console.log("compare: rill and kinesalite agree everywhere else");
}
