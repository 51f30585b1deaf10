/* The physical limit: two threads, each spawning /bin/true with posix_spawn and waiting for it, N in total. */
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;
static atomic_long left;

static void *worker(void *arg) {
  (void)arg;
  char *argv[] = { "/bin/true", NULL };
  while (atomic_fetch_sub(&left, 1) > 0) {
    pid_t pid;
    if (posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ) != 0) { perror("posix_spawn"); exit(1); }
    int status;
    waitpid(pid, &status, 0);
  }
  return NULL;
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 10000;
  int threads = argc > 2 ? atoi(argv[2]) : 2;
  atomic_store(&left, n);
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  pthread_t t[64];
  for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, worker, NULL);
  for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
  clock_gettime(CLOCK_MONOTONIC, &b);
  double ms = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
  printf("{\"jobs\": %ld, \"ms\": %.3f}\n", n, ms);
  return 0;
}
