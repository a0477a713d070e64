#!/bin/bash
# Stand-in for the apache/spark image's /opt/entrypoint.sh, written for the test harness from
# its documented behaviour: `driver` runs spark-submit in client mode under `tini -s` (so a
# SIGTERM to the container reaches the spark-submit JVM only), `executor` runs Spark's
# Kubernetes executor backend under tini, anything else is executed as given.
set -eo pipefail
export SPARK_HOME="${SPARK_HOME:-/opt/spark}"
SPARK_EXECUTOR_JAVA_OPTS=()
for v in "${!SPARK_JAVA_OPT_@}"; do SPARK_EXECUTOR_JAVA_OPTS+=("${!v}"); done
SPARK_CLASSPATH="${SPARK_CONF_DIR:-$SPARK_HOME/conf}:${SPARK_CLASSPATH:+$SPARK_CLASSPATH:}$SPARK_HOME/jars/*"

# The pod's user may have no passwd entry (runAsUser); Java and Hadoop want a name.
if ! getent passwd "$(id -u)" >/dev/null 2>&1 && [ -w /tmp ]; then
  cp /etc/passwd /tmp/passwd && echo "spark:x:$(id -u):$(id -g):spark:/opt/spark:/bin/false" >> /tmp/passwd
  export NSS_WRAPPER_PASSWD=/tmp/passwd NSS_WRAPPER_GROUP=/etc/group \
         LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libnss_wrapper.so
fi

case "${1:-}" in
  driver)
    shift
    exec /usr/bin/tini -s -- "$SPARK_HOME/bin/spark-submit" \
      --conf "spark.driver.bindAddress=${SPARK_DRIVER_BIND_ADDRESS:-127.0.0.1}" \
      --conf "spark.executorEnv.SPARK_DRIVER_POD_IP=${SPARK_DRIVER_BIND_ADDRESS:-127.0.0.1}" \
      --deploy-mode client "$@"
    ;;
  executor)
    shift
    exec /usr/bin/tini -s -- "${JAVA_HOME}/bin/java" "${SPARK_EXECUTOR_JAVA_OPTS[@]}" \
      -Xms"$SPARK_EXECUTOR_MEMORY" -Xmx"$SPARK_EXECUTOR_MEMORY" -cp "$SPARK_CLASSPATH" \
      org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \
      --driver-url "$SPARK_DRIVER_URL" --executor-id "$SPARK_EXECUTOR_ID" \
      --cores "$SPARK_EXECUTOR_CORES" --app-id "$SPARK_APPLICATION_ID" \
      --hostname "$SPARK_EXECUTOR_POD_IP" --resourceProfileId "$SPARK_RESOURCE_PROFILE_ID" \
      --podName "$SPARK_EXECUTOR_POD_NAME"
    ;;
  *)
    exec "$@"
    ;;
esac
