#!/usr/bin/env bash
# The AWS CLI (Debian's v2, /usr/bin/aws) against KinesisServer: a scripted session of create,
# put, put-records, get-shard-iterator, get-records, split, merge, list-shards, describe and
# delete, each output checked. Usage: aws_cli_test.sh <net_test_server binary>
# Exits 0 on success; prints what differed otherwise.
set -euo pipefail
server_bin="$1"
aws=/usr/bin/aws
if [ ! -x "$aws" ]; then
  echo "aws_cli_test: $aws is missing (scripts/install-deps.sh installs awscli)" >&2
  exit 1
fi
work="$(mktemp -d)"
coproc SERVER { "$server_bin" --key AKIDCLI clisecret; }
cleanup() {
  exec {SERVER[1]}>&- 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
read -r word port <&"${SERVER[0]}"
[ "$word" = PORT ] || { echo "server did not start" >&2; exit 1; }

# Nothing may reach the network or read the user's AWS configuration.
export AWS_ACCESS_KEY_ID=AKIDCLI AWS_SECRET_ACCESS_KEY=clisecret AWS_DEFAULT_REGION=us-east-1 \
  AWS_EC2_METADATA_DISABLED=true AWS_PAGER= AWS_MAX_ATTEMPTS=1 AWS_CONFIG_FILE=/dev/null \
  AWS_SHARED_CREDENTIALS_FILE=/dev/null
k() { "$aws" --endpoint-url "http://127.0.0.1:$port" --output json kinesis "$@"; }
# json <file> <python expression over d>: prints the value.
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }
expect() {  # expect <what> <actual> <expected>
  if [ "$2" != "$3" ]; then
    echo "aws_cli_test: $1: got '$2', expected '$3'" >&2
    exit 1
  fi
}

k create-stream --stream-name cli --shard-count 2
k wait stream-exists --stream-name cli
k describe-stream-summary --stream-name cli > "$work/summary.json"
expect "status" "$(json "$work/summary.json" 'd["StreamDescriptionSummary"]["StreamStatus"]')" ACTIVE
expect "open shards" "$(json "$work/summary.json" 'd["StreamDescriptionSummary"]["OpenShardCount"]')" 2

k put-record --stream-name cli --partition-key player-1 --data "aGVsbG8gd29ybGQ=" > "$work/put.json"
shard="$(json "$work/put.json" 'd["ShardId"]')"
seq="$(json "$work/put.json" 'd["SequenceNumber"]')"
k put-records --stream-name cli --records \
  "Data=b25l,PartitionKey=player-1" "Data=dHdv,PartitionKey=player-1" > "$work/puts.json"
expect "failed records" "$(json "$work/puts.json" 'd["FailedRecordCount"]')" 0
expect "put-records shards" "$(json "$work/puts.json" '",".join(r["ShardId"] for r in d["Records"])')" "$shard,$shard"

k get-shard-iterator --stream-name cli --shard-id "$shard" --shard-iterator-type AT_SEQUENCE_NUMBER \
  --starting-sequence-number "$seq" > "$work/it.json"
k get-records --shard-iterator "$(json "$work/it.json" 'd["ShardIterator"]')" > "$work/records.json"
expect "records" "$(json "$work/records.json" '",".join(r["Data"] for r in d["Records"])')" \
  "aGVsbG8gd29ybGQ=,b25l,dHdv"
expect "first sequence number" "$(json "$work/records.json" 'd["Records"][0]["SequenceNumber"]')" "$seq"
expect "partition keys" "$(json "$work/records.json" '",".join(r["PartitionKey"] for r in d["Records"])')" \
  "player-1,player-1,player-1"

k list-shards --stream-name cli > "$work/shards.json"
expect "shard ids" "$(json "$work/shards.json" '",".join(s["ShardId"] for s in d["Shards"])')" \
  "shardId-000000000000,shardId-000000000001"
first_end="$(json "$work/shards.json" 'd["Shards"][0]["HashKeyRange"]["EndingHashKey"]')"
expect "first shard's end" "$first_end" 170141183460469231731687303715884105727

k split-shard --stream-name cli --shard-to-split shardId-000000000000 \
  --new-starting-hash-key 85070591730234615865843651857942052864
k wait stream-exists --stream-name cli
k merge-shards --stream-name cli --shard-to-merge shardId-000000000002 \
  --adjacent-shard-to-merge shardId-000000000003
k list-shards --stream-name cli > "$work/shards2.json"
expect "shards after split and merge" \
  "$(json "$work/shards2.json" '",".join(s["ShardId"] + ":" + s.get("ParentShardId", "-") + ":" + s.get("AdjacentParentShardId", "-") for s in d["Shards"])')" \
  "shardId-000000000000:-:-,shardId-000000000001:-:-,shardId-000000000002:shardId-000000000000:-,shardId-000000000003:shardId-000000000000:-,shardId-000000000004:shardId-000000000002:shardId-000000000003"
k describe-stream --stream-name cli > "$work/describe.json"
expect "describe shards" "$(json "$work/describe.json" 'len(d["StreamDescription"]["Shards"])')" 5
expect "closed parent" \
  "$(json "$work/describe.json" '"EndingSequenceNumber" in d["StreamDescription"]["Shards"][0]["SequenceNumberRange"]')" True

# Errors come back as the CLI reports Kinesis' exceptions.
if k describe-stream --stream-name missing 2> "$work/err.txt"; then
  echo "aws_cli_test: describe-stream of a missing stream succeeded" >&2
  exit 1
fi
grep -q "ResourceNotFoundException" "$work/err.txt" || { cat "$work/err.txt" >&2; exit 1; }
if AWS_SECRET_ACCESS_KEY=wrong k list-streams 2> "$work/err2.txt"; then
  echo "aws_cli_test: a wrong secret was accepted" >&2
  exit 1
fi
grep -q "InvalidSignatureException" "$work/err2.txt" || { cat "$work/err2.txt" >&2; exit 1; }

k delete-stream --stream-name cli
k list-streams > "$work/streams.json"
expect "streams after delete" "$(json "$work/streams.json" 'len(d["StreamNames"])')" 0
echo "aws_cli_test: ok"
