#!/bin/sh
# Write the broker's config (advertised as $KAFKA_ADVERTISED_HOST, the bootstrap Service's
# name), format the log dir once and run the broker in the foreground.
set -eu
: "${KAFKA_ADVERTISED_HOST:?set KAFKA_ADVERTISED_HOST to the bootstrap Service name}"
data="${KAFKA_DATA_DIR:-/var/lib/kafka}"
mkdir -p "$data/log"
conf="$data/server.properties"
cat >"$conf" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:9093
listeners=PLAINTEXT://:9092,CONTROLLER://127.0.0.1:9093
advertised.listeners=PLAINTEXT://${KAFKA_ADVERTISED_HOST}:9092
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$data/log
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.message.timestamp.type=LogAppendTime
PROPS
java_opts="-Xmx${KAFKA_HEAP:-384m} -XX:+UseG1GC -Djava.awt.headless=true"
# shellcheck disable=SC2086
java $java_opts -cp '/opt/kafka/libs/*' kafka.tools.StorageTool format \
  --cluster-id=MkU3OEVBNTcwNTJENDM2Qg -c "$conf" --ignore-formatted
# shellcheck disable=SC2086
exec java $java_opts -cp '/opt/kafka/libs/*' kafka.Kafka "$conf"
