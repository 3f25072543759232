/*
 * The libmosquitto (C) peer of bench/e2e.ts: the same workload as the Deno
 * clients, so the three are measured the same way.
 *
 *   cc -O2 -o peer bench/_libmosquitto_peer.c -lmosquitto -lpthread
 *   ./peer <port> <qos> <messages>        prints one JSON line
 *
 * One process holds a subscriber and a publisher client, each with its own
 * network thread (mosquitto_loop_start). The publisher keeps at most WINDOW
 * publishes unresolved (on_publish: written at QoS 0, PUBACK at 1, PUBCOMP
 * at 2). The rate is messages / time from the SUBACK to the last message the
 * subscriber receives: what a user of the pair sees.
 *
 * bench/e2e.ts builds this file on first use (bench/.build/, gitignored).
 */
#include <mosquitto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WINDOW 1000
#define PAYLOAD 64

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static int outstanding = 0;
static int subscribed = 0;
static int connected = 0;
static long received = 0;
static long total = 0;
static double t_subscribed = 0, t_last = 0;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double cpu_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void on_connect(struct mosquitto *m, void *ud, int rc) {
  (void)m;
  (void)ud;
  if (rc != 0) {
    fprintf(stderr, "CONNACK %d\n", rc);
    exit(2);
  }
  pthread_mutex_lock(&lock);
  connected++;
  pthread_cond_broadcast(&changed);
  pthread_mutex_unlock(&lock);
}

static void on_subscribe(struct mosquitto *m, void *ud, int mid, int n, const int *granted) {
  (void)m, (void)ud, (void)mid, (void)n, (void)granted;
  pthread_mutex_lock(&lock);
  t_subscribed = now_ms();
  subscribed = 1;
  pthread_cond_broadcast(&changed);
  pthread_mutex_unlock(&lock);
}

static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg) {
  (void)m, (void)ud, (void)msg;
  pthread_mutex_lock(&lock);
  if (++received == total) {
    t_last = now_ms();
    pthread_cond_broadcast(&changed);
  }
  pthread_mutex_unlock(&lock);
}

static void on_publish(struct mosquitto *m, void *ud, int mid) {
  (void)m, (void)ud, (void)mid;
  pthread_mutex_lock(&lock);
  outstanding--;
  pthread_cond_broadcast(&changed);
  pthread_mutex_unlock(&lock);
}

static struct mosquitto *client(const char *id, int port) {
  struct mosquitto *m = mosquitto_new(id, true, NULL);
  if (m == NULL) exit(2);
  mosquitto_connect_callback_set(m, on_connect);
  mosquitto_subscribe_callback_set(m, on_subscribe);
  mosquitto_message_callback_set(m, on_message);
  mosquitto_publish_callback_set(m, on_publish);
  /* Unlimited, like the Deno clients' window of 1,000 which the loop below enforces. */
  mosquitto_int_option(m, MOSQ_OPT_SEND_MAXIMUM, 65535);
  mosquitto_int_option(m, MOSQ_OPT_RECEIVE_MAXIMUM, 65535);
  mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1);
  if (mosquitto_connect(m, "127.0.0.1", port, 60) != MOSQ_ERR_SUCCESS) exit(2);
  if (mosquitto_loop_start(m) != MOSQ_ERR_SUCCESS) exit(2);
  return m;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s <port> <qos> <messages>\n", argv[0]);
    return 2;
  }
  int port = atoi(argv[1]);
  int qos = atoi(argv[2]);
  total = atol(argv[3]);
  char id[64], topic[96];
  unsigned char payload[PAYLOAD];
  memset(payload, 0x61, sizeof payload);

  mosquitto_lib_init();
  snprintf(id, sizeof id, "sub-c-%d-%d", qos, (int)getpid());
  struct mosquitto *sub = client(id, port);
  snprintf(id, sizeof id, "pub-c-%d-%d", qos, (int)getpid());
  struct mosquitto *pub = client(id, port);
  snprintf(topic, sizeof topic, "bench/c-%d-%d/x", qos, (int)getpid());

  pthread_mutex_lock(&lock);
  while (connected < 2) pthread_cond_wait(&changed, &lock);
  pthread_mutex_unlock(&lock);
  mosquitto_subscribe(sub, NULL, "bench/#", qos);
  pthread_mutex_lock(&lock);
  while (!subscribed) pthread_cond_wait(&changed, &lock);
  pthread_mutex_unlock(&lock);

  double cpu0 = cpu_ms();
  for (long i = 0; i < total; i++) {
    pthread_mutex_lock(&lock);
    while (outstanding >= WINDOW) pthread_cond_wait(&changed, &lock);
    outstanding++;
    pthread_mutex_unlock(&lock);
    int rc = mosquitto_publish(pub, NULL, topic, PAYLOAD, payload, qos, false);
    if (rc != MOSQ_ERR_SUCCESS) {
      fprintf(stderr, "publish: %s\n", mosquitto_strerror(rc));
      return 1;
    }
  }
  pthread_mutex_lock(&lock);
  while (received < total) pthread_cond_wait(&changed, &lock);
  pthread_mutex_unlock(&lock);
  double cpu1 = cpu_ms();

  mosquitto_disconnect(pub);
  mosquitto_disconnect(sub);
  mosquitto_loop_stop(pub, false);
  mosquitto_loop_stop(sub, false);
  mosquitto_destroy(pub);
  mosquitto_destroy(sub);
  mosquitto_lib_cleanup();
  double elapsed = t_last - t_subscribed;
  printf("{\"messages\":%ld,\"rate\":%.1f,\"elapsed\":%.3f,\"clientCpu\":%.1f}\n", total,
         total / (elapsed / 1000.0), elapsed, cpu1 - cpu0);
  return 0;
}
