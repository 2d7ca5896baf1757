// The AWS SDK for JavaScript v3 against one Kinesis endpoint: a scripted session of create, put,
// put-records, get-shard-iterator, get-records, list-shards (paged), split, get-records to a
// closed shard's end, merge, describe, error cases, tags and delete; against rill also enhanced
// fan-out (RegisterStreamConsumer and SubscribeToShard over HTTP/2, the SDK's NodeHttp2Handler).
//
// Usage: node scenario.mjs ENDPOINT MODE     (MODE: rill or kinesalite)
// Credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. Prints one JSON document on
// stdout: every step's outcome, normalized to what must agree between two endpoints (data, keys,
// counts, shard ids, statuses, error names, ordering facts), never raw sequence numbers, ARNs,
// timestamps or iterators. A sequence number appears as the label of the put that returned it.
// Exits 1, naming the step, when a step that must succeed fails or a record comes back wrong.
import {
  AddTagsToStreamCommand,
  CreateStreamCommand,
  DeleteStreamCommand,
  DeregisterStreamConsumerCommand,
  DescribeStreamCommand,
  DescribeStreamConsumerCommand,
  DescribeStreamSummaryCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  KinesisClient,
  ListShardsCommand,
  ListStreamConsumersCommand,
  ListStreamsCommand,
  ListTagsForStreamCommand,
  MergeShardsCommand,
  PutRecordCommand,
  PutRecordsCommand,
  RegisterStreamConsumerCommand,
  SplitShardCommand,
  SubscribeToShardCommand,
} from "@aws-sdk/client-kinesis";
import { NodeHttp2Handler, NodeHttpHandler } from "@smithy/node-http-handler";

const [endpoint, mode] = process.argv.slice(2);
if (!endpoint || !["rill", "kinesalite"].includes(mode)) {
  console.error("usage: node scenario.mjs ENDPOINT rill|kinesalite");
  process.exit(2);
}
const accessKeyId = process.env.AWS_ACCESS_KEY_ID;
const secretAccessKey = process.env.AWS_SECRET_ACCESS_KEY;
if (!accessKeyId || !secretAccessKey) {
  console.error("scenario: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set");
  process.exit(2);
}

const STREAM = "js-sdk";
const TWO_127 = 2n ** 127n;  // where a 2-shard stream's second shard starts
const SPLIT_AT = 2n ** 126n; // the split of shardId-000000000000

function makeClient(options = {}) {
  return new KinesisClient({
    endpoint,
    region: "us-east-1",
    credentials: { accessKeyId, secretAccessKey },
    maxAttempts: 2,
    requestHandler: new NodeHttpHandler({ connectionTimeout: 5000, requestTimeout: 15000 }),
    ...options,
  });
}
const kinesis = makeClient();
const clients = [kinesis];

// ---- helpers --------------------------------------------------------------------------------

class ScenarioError extends Error {}
let currentStep = "start";
function fail(message) {
  throw new ScenarioError(message);
}
function check(condition, message) {
  if (!condition) fail(message);
}
const send = (command, client = kinesis) => client.send(command);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const hex = (bytes) => Buffer.from(bytes).toString("hex");
const bytes = (text) => new TextEncoder().encode(text);

// The outcome of a call that Kinesis refuses: its error's name, HTTP status, fault side and
// message, or {error: null} when it succeeds. Against rill a different outcome than `expected` (the
// exception AWS documents for the case) fails the scenario; against kinesalite it is recorded, and
// the comparison reports it unless it is a known difference.
async function errorOf(what, expected, call) {
  let outcome;
  try {
    await call();
    outcome = { error: null };
  } catch (e) {
    if (e instanceof ScenarioError) throw e;
    outcome = {
      error: e.name,
      httpStatus: e.$metadata?.httpStatusCode ?? null,
      fault: e.$fault ?? null,
      message: e.message ?? null,
    };
  }
  if (mode === "rill" && outcome.error !== expected) {
    fail(`${what}: ${outcome.error ?? "succeeded"}, expected ${expected}` +
         (outcome.message ? ` (${outcome.message})` : ""));
  }
  return outcome;
}

// Sequence numbers as labels: each put's number is remembered under a name, and numbers that
// come back (GetRecords, ListShards ranges) are printed as that name.
const labelOf = new Map(); // sequence number -> label
const seqOf = new Map();   // label -> sequence number
function remember(label, seq) {
  check(typeof seq === "string" && /^[0-9]+$/.test(seq), `${label}: sequence number '${seq}'`);
  check(!labelOf.has(seq), `${label}: sequence number ${seq} was already returned for ${labelOf.get(seq)}`);
  labelOf.set(seq, label);
  seqOf.set(label, seq);
}
const label = (seq) => labelOf.get(seq) ?? "(unknown sequence number)";
const increasing = (seqs) => seqs.every((s, i) => i === 0 || BigInt(s) > BigInt(seqs[i - 1]));

// What was put, by label, in put order: {data (Uint8Array), key, shard}.
const putData = new Map();
const labelsPutTo = (shard) => [...putData].filter(([, p]) => p.shard === shard).map(([l]) => l);

// A GetRecords response normalized: each record's label, data (hex), partition key; checks each
// record against what was put.
function normalizeRecords(records, where) {
  const out = [];
  for (const r of records) {
    const l = labelOf.get(r.SequenceNumber);
    check(l !== undefined, `${where}: record with unknown sequence number ${r.SequenceNumber}`);
    const put = putData.get(l);
    check(hex(r.Data) === hex(put.data), `${where}: ${l}'s data is ${hex(r.Data)}, put ${hex(put.data)}`);
    check(r.PartitionKey === put.key, `${where}: ${l}'s key is ${r.PartitionKey}, put ${put.key}`);
    check(r.ApproximateArrivalTimestamp instanceof Date, `${where}: ${l} has no arrival time`);
    out.push({ label: l, data: hex(r.Data), partitionKey: r.PartitionKey,
               encryptionType: r.EncryptionType ?? null });
  }
  return out;
}

function normalizeShard(s) {
  return {
    ShardId: s.ShardId,
    ParentShardId: s.ParentShardId ?? null,
    AdjacentParentShardId: s.AdjacentParentShardId ?? null,
    HashKeyRange: s.HashKeyRange,
    hasStartingSequenceNumber: /^[0-9]+$/.test(s.SequenceNumberRange?.StartingSequenceNumber ?? ""),
    hasEndingSequenceNumber: s.SequenceNumberRange?.EndingSequenceNumber !== undefined,
  };
}

async function waitStream(status, what) {
  const deadline = Date.now() + 15000;
  for (;;) {
    const d = await send(new DescribeStreamSummaryCommand({ StreamName: STREAM }));
    const s = d.StreamDescriptionSummary.StreamStatus;
    if (s === status) return d;
    if (Date.now() > deadline) fail(`${what}: stream still ${s} after 15 s, waiting for ${status}`);
    await sleep(50);
  }
}

async function listAllShards() {
  const shards = [];
  let token;
  let pages = 0;
  do {
    const r = await send(new ListShardsCommand(token ? { NextToken: token } : { StreamName: STREAM }));
    shards.push(...r.Shards);
    token = r.NextToken;
    check(++pages < 50, "ListShards: more than 50 pages");
  } while (token);
  return shards;
}

async function iterator(shardId, type, seqLabel) {
  const input = { StreamName: STREAM, ShardId: shardId, ShardIteratorType: type };
  if (seqLabel) input.StartingSequenceNumber = seqOf.get(seqLabel);
  const r = await send(new GetShardIteratorCommand(input));
  check(typeof r.ShardIterator === "string" && r.ShardIterator.length > 0,
        `GetShardIterator ${shardId} ${type}: no iterator`);
  return r.ShardIterator;
}

// GetRecords from an iterator until a call returns no next iterator (a closed shard's end) or,
// unless toEnd, no records (an open shard's tip). Returns the records and the last response.
async function readAll(it, where, toEnd = false) {
  const records = [];
  let last;
  for (let calls = 0; ; ++calls) {
    check(calls < 20, `${where}: still reading after 20 GetRecords calls`);
    last = await send(new GetRecordsCommand({ ShardIterator: it, Limit: 100 }));
    records.push(...last.Records);
    if (!last.NextShardIterator || (!toEnd && last.Records.length === 0)) break;
    it = last.NextShardIterator;
  }
  return { records, last };
}

// ---- the scenario ---------------------------------------------------------------------------

const doc = { mode: undefined };  // filled step by step; "mode" is set last (it differs)

async function scenario() {
  currentStep = "CreateStream";
  await send(new CreateStreamCommand({ StreamName: STREAM, ShardCount: 2 }));
  doc.createStatus = (await send(new DescribeStreamSummaryCommand({ StreamName: STREAM })))
    .StreamDescriptionSummary.StreamStatus;
  const summary = await waitStream("ACTIVE", "CreateStream");
  const sd = summary.StreamDescriptionSummary;
  const streamArn = sd.StreamARN;
  currentStep = "DescribeStreamSummary";
  doc.describeStreamSummary = {
    StreamName: sd.StreamName,
    StreamStatus: sd.StreamStatus,
    OpenShardCount: sd.OpenShardCount,
    RetentionPeriodHours: sd.RetentionPeriodHours,
    StreamModeDetails: sd.StreamModeDetails ?? null,
    EncryptionType: sd.EncryptionType ?? null,
    ConsumerCount: sd.ConsumerCount ?? null,
    EnhancedMonitoring: sd.EnhancedMonitoring ?? null,
    arnShape: /^arn:aws:kinesis:us-east-1:[0-9]{12}:stream\/js-sdk$/.test(streamArn),
    hasCreationTimestamp: sd.StreamCreationTimestamp instanceof Date,
  };

  currentStep = "ListStreams";
  const streams = await send(new ListStreamsCommand({}));
  doc.listStreams = {
    StreamNames: streams.StreamNames,
    HasMoreStreams: streams.HasMoreStreams,
    StreamSummaries: streams.StreamSummaries?.map((x) => ({
      StreamName: x.StreamName, StreamStatus: x.StreamStatus, StreamModeDetails: x.StreamModeDetails ?? null,
      arnIsTheStreams: x.StreamARN === streamArn, hasCreationTimestamp: x.StreamCreationTimestamp instanceof Date,
    })) ?? null,
  };

  // Puts: a partition key, several records in one PutRecords (binary data with zero bytes,
  // explicit hash keys into each shard), then one more PutRecord.
  currentStep = "PutRecord";
  const putOne = async (lbl, data, key, extra = {}) => {
    const r = await send(new PutRecordCommand({ StreamName: STREAM, Data: data, PartitionKey: key, ...extra }));
    remember(lbl, r.SequenceNumber);
    putData.set(lbl, { data, key, shard: r.ShardId });
    return { label: lbl, ShardId: r.ShardId, EncryptionType: r.EncryptionType ?? null };
  };
  doc.putRecord = await putOne("p0", bytes("hello world"), "player-1");

  currentStep = "PutRecords";
  const batch = [
    { lbl: "b0", Data: bytes("one"), PartitionKey: "player-1" },
    { lbl: "b1", Data: bytes("two"), PartitionKey: "player-1" },
    { lbl: "b2", Data: new Uint8Array([0x00, 0x01, 0xfe, 0xff, 0x00, 0x7f, 0x80]), PartitionKey: "binary" },
    { lbl: "b3", Data: bytes("to the first shard"), PartitionKey: "anything", ExplicitHashKey: "1" },
    { lbl: "b4", Data: bytes("to the second shard"), PartitionKey: "anything",
      ExplicitHashKey: (TWO_127 + 12345n).toString() },
    { lbl: "b5", Data: new Uint8Array([0]), PartitionKey: "zero" },
    { lbl: "b6", Data: bytes("to the split's upper half"), PartitionKey: "k",
      ExplicitHashKey: (SPLIT_AT + 7n).toString() },
  ];
  const puts = await send(new PutRecordsCommand({
    StreamName: STREAM,
    Records: batch.map(({ lbl, ...r }) => r),
  }));
  check(puts.Records.length === batch.length, `PutRecords: ${puts.Records.length} results for ${batch.length}`);
  puts.Records.forEach((r, i) => {
    check(r.SequenceNumber, `PutRecords: record ${i} failed: ${r.ErrorCode} ${r.ErrorMessage}`);
    remember(batch[i].lbl, r.SequenceNumber);
    putData.set(batch[i].lbl, { data: batch[i].Data, key: batch[i].PartitionKey, shard: r.ShardId });
  });
  doc.putRecords = {
    FailedRecordCount: puts.FailedRecordCount ?? 0,
    EncryptionType: puts.EncryptionType ?? null,
    records: puts.Records.map((r, i) => ({ label: batch[i].lbl, ShardId: r.ShardId })),
  };
  doc.putRecordAgain = await putOne("p1", bytes("after the batch"), "player-1");

  // Per shard, the labels in put order, and whether their sequence numbers increase.
  const byShard = (labels) => {
    const m = {};
    for (const l of labels) (m[putData.get(l).shard] ??= []).push(l);
    return m;
  };
  const putOrder = ["p0", ...batch.map((b) => b.lbl), "p1"];
  const putsByShard = byShard(putOrder);
  doc.putOrderByShard = Object.fromEntries(Object.entries(putsByShard).map(([shard, labels]) => [
    shard, { labels, sequenceNumbersIncrease: increasing(labels.map((l) => seqOf.get(l))) }]));

  // Iterators of each type, and the records they read.
  currentStep = "GetShardIterator/GetRecords";
  doc.getRecords = {};
  for (const shardId of ["shardId-000000000000", "shardId-000000000001"]) {
    const { records, last } = await readAll(await iterator(shardId, "TRIM_HORIZON"), `${shardId} TRIM_HORIZON`);
    const got = normalizeRecords(records, `GetRecords ${shardId} TRIM_HORIZON`);
    check(JSON.stringify(got.map((r) => r.label)) === JSON.stringify(putsByShard[shardId] ?? []),
          `GetRecords ${shardId} TRIM_HORIZON: got ${got.map((r) => r.label)}, put ${putsByShard[shardId]}`);
    doc.getRecords[`${shardId} TRIM_HORIZON`] = {
      records: got,
      sequenceNumbersIncrease: increasing(records.map((r) => r.SequenceNumber)),
      MillisBehindLatest: last.MillisBehindLatest ?? null,
      hasNextShardIterator: typeof last.NextShardIterator === "string",
      ChildShards: last.ChildShards ?? null,
    };
  }
  const shardOf = (l) => putData.get(l).shard;
  const p0Shard = shardOf("p0");
  const onP0Shard = labelsPutTo(p0Shard);  // p0, b0, b1, ...: b0 is not the shard's last record
  const b0At = onP0Shard.indexOf("b0");
  for (const [type, from, want] of [["AT_SEQUENCE_NUMBER", "b0", onP0Shard.slice(b0At, b0At + 2)],
                                    ["AFTER_SEQUENCE_NUMBER", "b0", onP0Shard.slice(b0At + 1, b0At + 3)]]) {
    const r = await send(new GetRecordsCommand({ ShardIterator: await iterator(p0Shard, type, from), Limit: 2 }));
    const got = normalizeRecords(r.Records, `GetRecords ${type} ${from}`);
    check(JSON.stringify(got.map((x) => x.label)) === JSON.stringify(want),
          `GetRecords ${type} ${from} (Limit 2): got ${got.map((x) => x.label)}, expected ${want}`);
    doc.getRecords[`${type} ${from}`] = {
      records: got,
      hasNextShardIterator: typeof r.NextShardIterator === "string",
    };
  }
  {
    // LATEST: nothing, then a record put after the iterator was taken.
    const latest = await iterator(p0Shard, "LATEST");
    const first = await send(new GetRecordsCommand({ ShardIterator: latest }));
    doc.latestPut = await putOne("p2", bytes("after LATEST"), "player-1");
    const second = await send(new GetRecordsCommand({ ShardIterator: first.NextShardIterator }));
    doc.getRecords["LATEST"] = {
      before: normalizeRecords(first.Records, "GetRecords LATEST"),
      after: normalizeRecords(second.Records, "GetRecords LATEST, then a put"),
    };
    check(doc.getRecords.LATEST.before.length === 0, "GetRecords LATEST: records before any put");
    check(JSON.stringify(doc.getRecords.LATEST.after.map((x) => x.label)) === '["p2"]',
          "GetRecords LATEST, then a put: not the record put");
  }

  // ListShards, one shard a page.
  currentStep = "ListShards (paged)";
  {
    const pages = [];
    let r = await send(new ListShardsCommand({ StreamName: STREAM, MaxResults: 1 }));
    for (;;) {
      pages.push({ shards: r.Shards.map(normalizeShard), hasNextToken: typeof r.NextToken === "string" });
      if (!r.NextToken || pages.length > 5) break;
      r = await send(new ListShardsCommand({ NextToken: r.NextToken, MaxResults: 1 }));
    }
    doc.listShardsPaged = pages;
  }

  // SplitShard: shardId-000000000000 at 2^126.
  currentStep = "SplitShard";
  await send(new SplitShardCommand({
    StreamName: STREAM, ShardToSplit: "shardId-000000000000", NewStartingHashKey: SPLIT_AT.toString(),
  }));
  doc.splitStatus = (await send(new DescribeStreamSummaryCommand({ StreamName: STREAM })))
    .StreamDescriptionSummary.StreamStatus === "ACTIVE" ? "ACTIVE at once" : "UPDATING, then ACTIVE";
  await waitStream("ACTIVE", "SplitShard");
  currentStep = "ListShards after the split";
  {
    const shards = await listAllShards();
    const parent = shards.find((s) => s.ShardId === "shardId-000000000000");
    const children = shards.filter((s) => s.ParentShardId === "shardId-000000000000");
    const lastParentSeq = labelsPutTo("shardId-000000000000").map((l) => seqOf.get(l)).at(-1);
    doc.afterSplit = {
      shards: shards.map(normalizeShard),
      parentEndCoversItsRecords: parent?.SequenceNumberRange?.EndingSequenceNumber !== undefined &&
        (lastParentSeq === undefined ||
         BigInt(parent.SequenceNumberRange.EndingSequenceNumber) >= BigInt(lastParentSeq)),
      childrenStartAfterParentEnd: children.length > 0 && children.every((c) =>
        BigInt(c.SequenceNumberRange.StartingSequenceNumber) >
        BigInt(parent?.SequenceNumberRange?.EndingSequenceNumber ?? "0")),
    };
  }

  // Open shards 1 (the upper half) and 2 (the lowest quarter) are not adjacent.
  currentStep = "MergeShards of shards that are not adjacent";
  doc.errors = {
    mergeNotAdjacent: await errorOf("MergeShards of shards that are not adjacent", "InvalidArgumentException",
      () => send(new MergeShardsCommand({
        StreamName: STREAM, ShardToMerge: "shardId-000000000001", AdjacentShardToMerge: "shardId-000000000002" }))),
  };

  // Puts to the children, then the closed parent read to its end.
  currentStep = "PutRecord after the split";
  doc.putAfterSplit = [
    await putOne("c0", bytes("lower child"), "c", { ExplicitHashKey: "3" }),
    await putOne("c1", bytes("upper child"), "c", { ExplicitHashKey: (SPLIT_AT + 3n).toString() }),
  ];
  currentStep = "GetRecords on the closed parent";
  {
    const { records, last } = await readAll(await iterator("shardId-000000000000", "TRIM_HORIZON"),
                                            "closed parent", /*toEnd=*/true);
    const got = normalizeRecords(records, "GetRecords closed parent");
    const put = labelsPutTo("shardId-000000000000");
    check(JSON.stringify(got.map((r) => r.label)) === JSON.stringify(put),
          `GetRecords closed parent: got ${got.map((r) => r.label)}, put ${put}`);
    doc.closedParent = {
      records: got.map((r) => r.label),
      reachedEnd: last.NextShardIterator === undefined || last.NextShardIterator === null,
      MillisBehindLatest: last.MillisBehindLatest ?? null,
      ChildShards: last.ChildShards
        ? last.ChildShards.map((c) => ({ ShardId: c.ShardId, ParentShards: c.ParentShards, HashKeyRange: c.HashKeyRange }))
        : null,
    };
    // An iterator AFTER its last record, too, reaches the end.
    const lastLabel = got.at(-1)?.label;
    if (lastLabel) {
      const r = await send(new GetRecordsCommand({
        ShardIterator: await iterator("shardId-000000000000", "AFTER_SEQUENCE_NUMBER", lastLabel) }));
      doc.closedParentAfterLast = {
        records: r.Records.length,
        reachedEnd: r.NextShardIterator === undefined || r.NextShardIterator === null,
      };
    }
    for (const child of ["shardId-000000000002", "shardId-000000000003"]) {
      const { records: cr } = await readAll(await iterator(child, "TRIM_HORIZON"), child);
      doc[`records ${child}`] = normalizeRecords(cr, `GetRecords ${child}`).map((r) => r.label);
    }
  }

  // MergeShards of the two children (adjacent, open).
  currentStep = "MergeShards";
  await send(new MergeShardsCommand({
    StreamName: STREAM, ShardToMerge: "shardId-000000000002", AdjacentShardToMerge: "shardId-000000000003",
  }));
  await waitStream("ACTIVE", "MergeShards");
  currentStep = "ListShards after the merge";
  doc.afterMerge = { shards: (await listAllShards()).map(normalizeShard) };
  currentStep = "DescribeStream";
  {
    const d = (await send(new DescribeStreamCommand({ StreamName: STREAM }))).StreamDescription;
    doc.describeStream = {
      StreamName: d.StreamName,
      StreamStatus: d.StreamStatus,
      HasMoreShards: d.HasMoreShards,
      shards: d.Shards.map(normalizeShard),
      RetentionPeriodHours: d.RetentionPeriodHours,
      EncryptionType: d.EncryptionType ?? null,
    };
    const s = (await send(new DescribeStreamSummaryCommand({ StreamName: STREAM }))).StreamDescriptionSummary;
    doc.describeStreamSummaryAfterMerge = { OpenShardCount: s.OpenShardCount, StreamStatus: s.StreamStatus };
  }

  // Errors, with the exception AWS documents for each. SplitShard of a closed shard comes last:
  // an endpoint that accepts it reshards the stream.
  currentStep = "errors";
  doc.errors = {
    ...doc.errors,
    describeUnknownStream: await errorOf("DescribeStreamSummary of an unknown stream", "ResourceNotFoundException",
      () => send(new DescribeStreamSummaryCommand({ StreamName: "no-such-stream" }))),
    putToUnknownStream: await errorOf("PutRecord to an unknown stream", "ResourceNotFoundException",
      () => send(new PutRecordCommand({ StreamName: "no-such-stream", Data: bytes("x"), PartitionKey: "k" }))),
    putEmptyPartitionKey: await errorOf("PutRecord with an empty partition key", "ValidationException",
      () => send(new PutRecordCommand({ StreamName: STREAM, Data: bytes("x"), PartitionKey: "" }))),
    iteratorUnknownShard: await errorOf("GetShardIterator on an unknown shard", "ResourceNotFoundException",
      () => send(new GetShardIteratorCommand({
        StreamName: STREAM, ShardId: "shardId-000000000099", ShardIteratorType: "TRIM_HORIZON" }))),
    createExistingStream: await errorOf("CreateStream of an existing stream", "ResourceInUseException",
      () => send(new CreateStreamCommand({ StreamName: STREAM, ShardCount: 1 }))),
    getRecordsBadIterator: await errorOf("GetRecords with a malformed iterator", "InvalidArgumentException",
      () => send(new GetRecordsCommand({ ShardIterator: "not-an-iterator" }))),
    splitClosedShard: await errorOf("SplitShard of a closed shard", "InvalidArgumentException",
      () => send(new SplitShardCommand({
        StreamName: STREAM, ShardToSplit: "shardId-000000000000", NewStartingHashKey: "5" }))),
  };
  await waitStream("ACTIVE", "errors");

  // Authentication: unsigned, signed with a wrong secret, signed with an unknown access key.
  currentStep = "authentication";
  {
    const unsigned = makeClient();
    unsigned.middlewareStack.addRelativeTo((next) => async (args) => {
      delete args.request.headers.authorization;
      delete args.request.headers["x-amz-date"];
      delete args.request.headers["x-amz-content-sha256"];
      return next(args);
    }, { relation: "after", toMiddleware: "httpSigningMiddleware", name: "dropSignature" });
    const wrongSecret = makeClient({ credentials: { accessKeyId, secretAccessKey: `${secretAccessKey}-wrong` } });
    const unknownKey = makeClient({ credentials: { accessKeyId: "AKIDUNKNOWN0000", secretAccessKey } });
    clients.push(unsigned, wrongSecret, unknownKey);
    const list = (client) => () => send(new ListStreamsCommand({}), client);
    doc.auth = {
      unsigned: await errorOf("an unsigned request", "MissingAuthenticationTokenException", list(unsigned)),
      wrongSecret: await errorOf("a request signed with a wrong secret", "InvalidSignatureException",
                                 list(wrongSecret)),
      unknownKey: await errorOf("a request signed with an unknown access key", "UnrecognizedClientException",
                                list(unknownKey)),
    };
  }

  // Tags.
  currentStep = "AddTagsToStream/ListTagsForStream";
  await send(new AddTagsToStreamCommand({ StreamName: STREAM, Tags: { team: "rill", env: "test" } }));
  {
    const t = await send(new ListTagsForStreamCommand({ StreamName: STREAM }));
    doc.tags = { Tags: t.Tags, HasMoreTags: t.HasMoreTags };
  }

  // Enhanced fan-out.
  currentStep = "enhanced fan-out";
  doc.enhancedFanOut = mode === "rill"
    ? await enhancedFanOut(streamArn)
    : { RegisterStreamConsumer: await errorOf("RegisterStreamConsumer", "UnknownOperationException", () => send(
        new RegisterStreamConsumerCommand({ StreamARN: streamArn, ConsumerName: "js-consumer" }))) };

  // Delete.
  currentStep = "DeleteStream";
  await send(new DeleteStreamCommand({ StreamName: STREAM }));
  doc.deleteStatus = await send(new DescribeStreamSummaryCommand({ StreamName: STREAM })).then(
    (d) => d.StreamDescriptionSummary.StreamStatus, (e) => e.name);
  {
    const deadline = Date.now() + 15000;
    let gone;
    while (!gone) {
      gone = await send(new DescribeStreamSummaryCommand({ StreamName: STREAM })).then(
        () => undefined, (e) => e.name);
      if (!gone && Date.now() > deadline) fail("DeleteStream: the stream is still there after 15 s");
      if (!gone) await sleep(50);
    }
    const after = await send(new ListStreamsCommand({}));
    doc.afterDelete = { describe: gone, StreamNames: after.StreamNames };
  }
}

// RegisterStreamConsumer, records put before and while subscribed, SubscribeToShard over HTTP/2
// on the merged shard, DeregisterStreamConsumer.
async function enhancedFanOut(streamArn) {
  const out = {};
  const reg = await send(new RegisterStreamConsumerCommand({ StreamARN: streamArn, ConsumerName: "js-consumer" }));
  const consumerArn = reg.Consumer.ConsumerARN;
  out.register = {
    ConsumerName: reg.Consumer.ConsumerName,
    arnShape: consumerArn.startsWith(`${streamArn}/consumer/js-consumer:`),
    ConsumerStatus: reg.Consumer.ConsumerStatus,
  };
  const deadline = Date.now() + 15000;
  let described;
  for (;;) {
    described = (await send(new DescribeStreamConsumerCommand({ ConsumerARN: consumerArn }))).ConsumerDescription;
    if (described.ConsumerStatus === "ACTIVE") break;
    if (Date.now() > deadline) fail(`consumer still ${described.ConsumerStatus} after 15 s`);
    await sleep(50);
  }
  out.describe = {
    ConsumerName: described.ConsumerName,
    ConsumerStatus: described.ConsumerStatus,
    sameArn: described.ConsumerARN === consumerArn,
    sameStreamArn: described.StreamARN === streamArn,
  };
  const consumers = await send(new ListStreamConsumersCommand({ StreamARN: streamArn }));
  out.list = consumers.Consumers.map((c) => ({ ConsumerName: c.ConsumerName, ConsumerStatus: c.ConsumerStatus }));
  check(out.register.ConsumerName === "js-consumer" && out.register.arnShape,
        `RegisterStreamConsumer: ${JSON.stringify(out.register)}`);
  check(out.describe.ConsumerName === "js-consumer" && out.describe.sameArn && out.describe.sameStreamArn,
        `DescribeStreamConsumer: ${JSON.stringify(out.describe)}`);
  check(JSON.stringify(out.list) === '[{"ConsumerName":"js-consumer","ConsumerStatus":"ACTIVE"}]',
        `ListStreamConsumers: ${JSON.stringify(out.list)}`);

  // The merged shard covers [0, 2^127): records with small explicit hash keys land there.
  const shard = "shardId-000000000004";
  const put = async (lbl, text) => {
    const data = bytes(text);
    const r = await send(new PutRecordCommand({ StreamName: "js-sdk", Data: data, PartitionKey: `efo-${lbl}`,
                                                ExplicitHashKey: "42" }));
    check(r.ShardId === shard, `EFO put ${lbl} went to ${r.ShardId}`);
    remember(lbl, r.SequenceNumber);
    putData.set(lbl, { data, key: `efo-${lbl}`, shard });
  };
  await put("e0", "fan-out one");
  await put("e1", "fan-out two");

  const h2 = makeClient({ requestHandler: new NodeHttp2Handler({ requestTimeout: 20000, sessionTimeout: 30000 }) });
  clients.push(h2);
  const resp = await send(new SubscribeToShardCommand({
    ConsumerARN: consumerArn, ShardId: shard, StartingPosition: { Type: "TRIM_HORIZON" },
  }), h2);
  const want = ["e0", "e1", "e2", "e3"];  // the merged shard's records, all put in this step
  const received = [];
  const events = [];
  let livePut = false;
  const timer = setTimeout(() => {
    console.error(`scenario: SubscribeToShard: timed out; received ${received.map((r) => r.label)}`);
    process.exit(1);
  }, 20000);
  currentStep = "SubscribeToShard (HTTP/2)";
  for await (const ev of resp.EventStream) {
    const e = ev.SubscribeToShardEvent;
    check(e, `SubscribeToShard: unexpected event ${JSON.stringify(Object.keys(ev))}`);
    check(typeof e.ContinuationSequenceNumber === "string" && /^[0-9]+$/.test(e.ContinuationSequenceNumber),
          "SubscribeToShard: an event without a ContinuationSequenceNumber");
    if (e.Records.length > 0) {
      const got = normalizeRecords(e.Records, "SubscribeToShard");
      received.push(...got);
      events.push({
        records: got.length,
        continuationIsLastRecord: e.ContinuationSequenceNumber === e.Records.at(-1).SequenceNumber,
        continuationNotBeforeLastRecord:
          BigInt(e.ContinuationSequenceNumber) >= BigInt(e.Records.at(-1).SequenceNumber),
        hasMillisBehindLatest: typeof e.MillisBehindLatest === "number",
      });
    }
    if (!livePut && received.some((r) => r.label === "e1")) {
      livePut = true;
      await put("e2", "fan-out three, while subscribed");
      await put("e3", "fan-out four, while subscribed");
    }
    if (received.some((r) => r.label === "e3")) break;
  }
  clearTimeout(timer);
  out.subscribe = {
    records: received.map((r) => ({ label: r.label, data: r.data, partitionKey: r.partitionKey })),
    sequenceNumbersIncrease: increasing(received.map((r) => seqOf.get(r.label))),
    everyContinuationNotBeforeItsLastRecord: events.every((e) => e.continuationNotBeforeLastRecord),
    everyEventHasMillisBehindLatest: events.every((e) => e.hasMillisBehindLatest),
  };
  check(JSON.stringify(received.map((r) => r.label)) === JSON.stringify(want),
        `SubscribeToShard: received ${received.map((r) => r.label)}, put ${want}`);
  check(out.subscribe.sequenceNumbersIncrease, "SubscribeToShard: sequence numbers do not increase");
  check(out.subscribe.everyContinuationNotBeforeItsLastRecord,
        "SubscribeToShard: a ContinuationSequenceNumber before its event's last record");
  check(out.subscribe.everyEventHasMillisBehindLatest, "SubscribeToShard: an event without MillisBehindLatest");

  currentStep = "DeregisterStreamConsumer";
  await send(new DeregisterStreamConsumerCommand({ ConsumerARN: consumerArn }));
  // ConsumerStatus has a DELETING state; the API reference does not say the consumer passes through
  // it, so DELETING and already gone are both accepted.
  out.afterDeregister = await send(new DescribeStreamConsumerCommand({ ConsumerARN: consumerArn })).then(
    (d) => d.ConsumerDescription.ConsumerStatus, (e) => e.name);
  check(["DELETING", "ResourceNotFoundException"].includes(out.afterDeregister),
        `DescribeStreamConsumer after DeregisterStreamConsumer: ${out.afterDeregister}`);
  return out;
}

try {
  await scenario();
} catch (e) {
  const what = e instanceof ScenarioError ? e.message : `${e.name}: ${e.message}`;
  console.error(`scenario (${mode} at ${endpoint}): step ${currentStep} failed: ${what}`);
  process.exit(1);
} finally {
  for (const c of clients) c.destroy();
}
doc.mode = mode;
process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
