/* Teardown under pressure: callbacks and URL providers of different clients freeing each other
 * (no deadlock, every free returns), calls racing with wps_client_free (exactly one completion
 * per accepted operation, no user code after free returned), a URL provider slower than the
 * shutdown timeout, and stop/free from atexit handlers and thread-local destructors. */
#include "harness.h"

#include <spawn.h>
#include <sys/wait.h>

#define HUB "thub"

extern char **environ;

/* ---- two or three clients whose callbacks free each other -------------------------------- */

/* Each client's callback announces itself, waits (bounded) until every member of the cycle is
 * inside its callback, then frees the next client of the cycle. */
#define MAX_CYCLE 3
typedef struct cycle cycle;
typedef struct {
    cycle *cy;
    int index;
    wps_client *c;
    latch destroyed;      /* user_data_free of its registration ran */
    int free_returned;    /* the free of this client returned */
    int late_callbacks;   /* callbacks of this client after its free returned */
} member;
struct cycle {
    int n;
    member m[MAX_CYCLE];
    latch entered;        /* members inside their callback */
    latch freed;          /* frees that returned */
    int poll;
};

static void cycle_cb(void *ud, const wps_event *e) {
    member *m = ud;
    cycle *cy = m->cy;
    (void)e;
    if (__atomic_load_n(&m->free_returned, __ATOMIC_SEQ_CST)) __atomic_add_fetch(&m->late_callbacks, 1, __ATOMIC_SEQ_CST);
    if (e->type != WPS_EVENT_GROUP_MESSAGE) return;
    latch_add(&cy->entered, 1);
    latch_wait(&cy->entered, cy->n, 5000);
    member *next = &cy->m[(m->index + 1) % cy->n];
    wps_client_free(next->c);
    __atomic_store_n(&next->free_returned, 1, __ATOMIC_SEQ_CST);
    latch_add(&cy->freed, 1);
}

static void cycle_destroy(void *ud) {
    member *m = ud;
    latch_add(&m->destroyed, 1);
}

typedef struct { member *m; latch *stop; } pump_arg;

/* Poll mode: one application thread dispatches one client until the cycle is done. */
static void *pump(void *arg) {
    pump_arg *p = arg;
    while (latch_get(p->stop) == 0) {
        uint32_t n = 0;
        if (wps_client_dispatch(p->m->c, 0, 50, &n) != WPS_OK) break; /* freed */
    }
    return NULL;
}

static int run_cycle(int n, int poll) {
    static cycle cy;
    memset(&cy, 0, sizeof cy);
    cy.n = n;
    cy.poll = poll;
    latch_init(&cy.entered);
    latch_init(&cy.freed);
    char g[96];
    unique_group(poll ? "pcycle" : "cycle", g);
    char *u = mint_url(HUB, "cyc", ALL_ROLES, 3600);
    CHECK(u, "url");
    wps_options *o = NULL;
    CHECK_OK(wps_options_new(&o));
    if (poll) CHECK_OK(wps_options_set_dispatch_mode(o, WPS_DISPATCH_POLL));
    for (int i = 0; i < n; i++) {
        member *m = &cy.m[i];
        m->cy = &cy;
        m->index = i;
        latch_init(&m->destroyed);
        CHECK_OK(wps_client_new(u, o, &m->c));
        CHECK_OK(wps_set_callback_ex(m->c, WPS_EVENT_GROUP_MESSAGE, cycle_cb, m, cycle_destroy));
        CHECK_OK(wps_set_callback(m->c, WPS_EVENT_STOPPED, cycle_cb, m));
        CHECK_OK(wps_client_start(m->c, 10000));
        CHECK_OK(wps_join_group(m->c, g, 0, NULL));
    }
    wps_options_free(o);
    latch stop;
    latch_init(&stop);
    pthread_t pumps[MAX_CYCLE];
    pump_arg args[MAX_CYCLE];
    if (poll)
        for (int i = 0; i < n; i++) {
            args[i].m = &cy.m[i];
            args[i].stop = &stop;
            pthread_create(&pumps[i], NULL, pump, &args[i]);
        }
    wps_client *sender = NULL;
    CHECK_OK(wps_client_new(u, NULL, &sender));
    free(u);
    CHECK_OK(wps_client_start(sender, 10000));
    CHECK_OK(wps_send_to_group(sender, g, (const uint8_t *)"go", 2, WPS_DATA_TEXT, 0, 0, NULL));
    int64_t t0 = now_ms();
    int all_returned = latch_wait(&cy.freed, n, 20000);
    int64_t took = now_ms() - t0;
    CHECK(all_returned, "%ld of %d frees returned (deadlock)", latch_get(&cy.freed), n);
    for (int i = 0; i < n; i++)
        CHECK(latch_wait(&cy.m[i].destroyed, 1, 10000), "client %d's teardown finished", i);
    latch_add(&stop, 1);
    if (poll)
        for (int i = 0; i < n; i++) pthread_join(pumps[i], NULL);
    /* The free that would have closed the cycle handed its teardown to the thread running the
     * client's callback (that callback waits, through the other frees, for the caller): that
     * one client's STOPPED runs after its free returned, on that thread. No other does. */
    int handed_off = 0;
    for (int i = 0; i < n; i++) {
        CHECK(latch_get(&cy.m[i].destroyed) == 1, "client %d: destructor once", i);
        if (cy.m[i].late_callbacks) handed_off++;
        CHECK_RC(wps_client_stop(cy.m[i].c, 100), WPS_ERR_INVALID_HANDLE);
    }
    CHECK(handed_off <= 1, "%d clients ran callbacks after their free returned", handed_off);
    printf("INFO %d-client %s cycle: all frees returned in %lld ms\n", n, poll ? "poll" : "thread", (long long)took);
    wps_client_free(sender);
    for (int i = 0; i < n; i++) latch_destroy(&cy.m[i].destroyed);
    latch_destroy(&stop);
    latch_destroy(&cy.entered);
    latch_destroy(&cy.freed);
    return 0;
}

static int test_callbacks_of_two_clients_free_each_other(void) { return run_cycle(2, 0); }
static int test_callbacks_of_two_poll_clients_free_each_other(void) { return run_cycle(2, 1); }
static int test_three_poll_clients_free_each_other_in_a_cycle(void) { return run_cycle(3, 1); }

/* ---- URL providers freeing each other's clients -------------------------------------------- */

typedef struct {
    wps_client *self, *other;
    latch *entered;
    latch returned;       /* the provider call returned */
    latch destroyed;      /* provider_user_data_free ran */
    int destroyed_before_return;
    latch free_done;
} prov;

static int32_t freeing_provider(void *ud, char *buf, size_t cap, size_t *out_len) {
    prov *p = ud;
    (void)buf; (void)cap; (void)out_len;
    latch_add(p->entered, 1);
    latch_wait(p->entered, 2, 5000);
    wps_client_free(p->other);
    latch_add(&p->free_done, 1);
    latch_add(&p->returned, 1);
    return WPS_ERR_URL_PROVIDER;
}

static void prov_destroy(void *ud) {
    prov *p = ud;
    if (latch_get(&p->returned) == 0) p->destroyed_before_return = 1;
    latch_add(&p->destroyed, 1);
}

static void count_completion(void *ud, const wps_event *e) {
    (void)e;
    latch_add(ud, 1);
}

static int test_url_providers_free_each_others_clients(void) {
    latch entered, completions;
    latch_init(&entered);
    latch_init(&completions);
    static prov p[2];
    memset(p, 0, sizeof p);
    for (int i = 0; i < 2; i++) {
        p[i].entered = &entered;
        latch_init(&p[i].returned);
        latch_init(&p[i].destroyed);
        latch_init(&p[i].free_done);
        CHECK_OK(wps_client_new_with_provider_ex(freeing_provider, &p[i], prov_destroy, NULL, &p[i].self));
    }
    p[0].other = p[1].self;
    p[1].other = p[0].self;
    for (int i = 0; i < 2; i++)
        CHECK_OK(wps_client_start_async(p[i].self, 10000, count_completion, &completions));
    for (int i = 0; i < 2; i++) {
        CHECK(latch_wait(&p[i].free_done, 1, 15000), "provider %d: its free returned (deadlock)", i);
        CHECK(latch_wait(&p[i].destroyed, 1, 10000), "provider %d: destructor ran", i);
        CHECK(latch_get(&p[i].destroyed) == 1, "provider %d: destructor once", i);
        CHECK(!p[i].destroyed_before_return, "provider %d: destructor after its last call returned", i);
    }
    CHECK(latch_wait(&completions, 2, 5000) && latch_get(&completions) == 2, "one completion per start: %ld", latch_get(&completions));
    for (int i = 0; i < 2; i++) {
        latch_destroy(&p[i].returned);
        latch_destroy(&p[i].destroyed);
        latch_destroy(&p[i].free_done);
    }
    latch_destroy(&entered);
    latch_destroy(&completions);
    return 0;
}

/* ---- a URL provider slower than the shutdown timeout --------------------------------------- */

typedef struct {
    latch entered, release, returned, destroyed;
    int destroyed_before_return;
} slow_prov;

static int32_t slow_provider(void *ud, char *buf, size_t cap, size_t *out_len) {
    slow_prov *s = ud;
    (void)buf; (void)cap; (void)out_len;
    latch_add(&s->entered, 1);
    latch_wait(&s->release, 1, 12000);  /* a provider taking up to 12 s */
    latch_add(&s->returned, 1);
    return WPS_ERR_URL_PROVIDER;
}

static void slow_destroy(void *ud) {
    slow_prov *s = ud;
    if (latch_get(&s->returned) == 0) s->destroyed_before_return = 1;
    latch_add(&s->destroyed, 1);
}

static int test_free_is_bounded_by_the_shutdown_timeout_with_a_slow_url_provider(void) {
    static slow_prov s;
    memset(&s, 0, sizeof s);
    latch_init(&s.entered);
    latch_init(&s.release);
    latch_init(&s.returned);
    latch_init(&s.destroyed);
    latch completions;
    latch_init(&completions);
    wps_options *o = NULL;
    CHECK_OK(wps_options_new(&o));
    CHECK_OK(wps_options_set_shutdown_timeout_ms(o, 1000));
    wps_client *c = NULL;
    CHECK_OK(wps_client_new_with_provider_ex(slow_provider, &s, slow_destroy, o, &c));
    wps_options_free(o);
    CHECK_OK(wps_client_start_async(c, 30000, count_completion, &completions));
    CHECK(latch_wait(&s.entered, 1, 5000), "provider called");
    int64_t t0 = now_ms();
    wps_client_free(c);
    int64_t took = now_ms() - t0;
    printf("INFO free with a 1000 ms shutdown timeout and a provider still running: %lld ms\n", (long long)took);
    CHECK(took < 2500, "free took %lld ms", (long long)took);
    CHECK(latch_get(&completions) == 1, "the start's completion was delivered before free returned");
    CHECK(latch_get(&s.destroyed) == 0, "destructor waits for the running provider call");
    latch_add(&s.release, 1);
    CHECK(latch_wait(&s.destroyed, 1, 5000), "destructor after the provider returned");
    CHECK(!s.destroyed_before_return && latch_get(&s.destroyed) == 1, "once, after the last call");
    latch_destroy(&s.entered);
    latch_destroy(&s.release);
    latch_destroy(&s.returned);
    latch_destroy(&s.destroyed);
    latch_destroy(&completions);
    return 0;
}

/* ---- calls racing with wps_client_free ----------------------------------------------------- */

typedef struct race race;
typedef struct { race *r; int kind; } racer_arg;
struct race {
    wps_client *c;
    char group[96];
    latch go;              /* racers started */
    long accepted;         /* async calls that returned WPS_OK */
    long completed;        /* their completions */
    long registered;       /* set_callback_ex calls that returned WPS_OK */
    long destroyed;        /* user_data_free calls */
    int free_returned;
    long late;             /* completions or destructors after free returned */
};

static void race_completion(void *ud, const wps_event *e) {
    race *r = ud;
    (void)e;
    if (__atomic_load_n(&r->free_returned, __ATOMIC_SEQ_CST)) __atomic_add_fetch(&r->late, 1, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&r->completed, 1, __ATOMIC_SEQ_CST);
}

static void race_noop(void *ud, const wps_event *e) { (void)ud; (void)e; }

static void race_destroy(void *ud) {
    race *r = ud;
    if (__atomic_load_n(&r->free_returned, __ATOMIC_SEQ_CST)) __atomic_add_fetch(&r->late, 1, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&r->destroyed, 1, __ATOMIC_SEQ_CST);
}

static void *racer(void *arg) {
    racer_arg *a = arg;
    race *r = a->r;
    for (int i = 0;; i++) {
        int32_t rc;
        if (a->kind == 0)
            rc = wps_join_group_async(r->c, r->group, 0, race_completion, r, NULL);
        else if (a->kind == 1)
            rc = wps_send_to_group_async(r->c, r->group, (const uint8_t *)"x", 1, WPS_DATA_TEXT, 0, 0,
                                         race_completion, r, NULL);
        else
            rc = wps_set_callback_ex(r->c, WPS_EVENT_GROUP_MESSAGE, race_noop, r, race_destroy);
        if (i == 0) latch_add(&r->go, 1);
        if (rc == WPS_OK) {
            __atomic_add_fetch(a->kind == 2 ? &r->registered : &r->accepted, 1, __ATOMIC_SEQ_CST);
        } else if (rc == WPS_ERR_INVALID_HANDLE) {
            return NULL;
        } else if (rc != WPS_ERR_CANCELLED) {
            fprintf(stderr, "    racer %d: unexpected %s\n", a->kind, wps_result_name(rc));
            return NULL;
        }
    }
}

static int test_calls_racing_with_free_complete_once_and_no_user_code_runs_after_it(void) {
    int trials = getenv("WPS_RACE_TRIALS") ? atoi(getenv("WPS_RACE_TRIALS")) : 200;
    char *u = mint_url(HUB, "racer", ALL_ROLES, 3600);
    CHECK(u, "url");
    long lost = 0, late = 0, undestroyed = 0, accepted = 0;
    for (int t = 0; t < trials; t++) {
        race r;
        memset(&r, 0, sizeof r);
        latch_init(&r.go);
        unique_group("race", r.group);
        CHECK_OK(wps_client_new(u, NULL, &r.c));
        if (t % 2 == 0) CHECK_OK(wps_client_start(r.c, 10000)); /* half connected, half not */
        pthread_t th[3];
        racer_arg args[3];
        for (int k = 0; k < 3; k++) {
            args[k].r = &r;
            args[k].kind = k;
            pthread_create(&th[k], NULL, racer, &args[k]);
        }
        CHECK(latch_wait(&r.go, 3, 5000), "racers started");
        wps_client_free(r.c);
        long completed_at_free = __atomic_load_n(&r.completed, __ATOMIC_SEQ_CST);
        long destroyed_at_free = __atomic_load_n(&r.destroyed, __ATOMIC_SEQ_CST);
        __atomic_store_n(&r.free_returned, 1, __ATOMIC_SEQ_CST);
        for (int k = 0; k < 3; k++) pthread_join(th[k], NULL);
        /* Every call that returned WPS_OK had been accepted before free returned; each
         * accepted operation completed, and each registration was destroyed, by then. */
        lost += r.accepted - completed_at_free;
        undestroyed += r.registered - destroyed_at_free;
        late += r.late;
        accepted += r.accepted;
        latch_destroy(&r.go);
    }
    free(u);
    printf("INFO %d free races: %ld async calls accepted, %ld completions missing at free, "
           "%ld registrations not destroyed at free, %ld completions/destructors after free\n",
           trials, accepted, lost, undestroyed, late);
    CHECK(lost == 0 && undestroyed == 0 && late == 0, "see INFO line");
    return 0;
}

/* ---- stop and free at process and thread exit ---------------------------------------------- */

static wps_client *exit_client;

static void stop_and_free(const char *where) {
    int32_t rc = wps_client_stop(exit_client, 5000);
    const char *m = wps_last_error_message();
    wps_client_free(exit_client);
    /* the handle is gone: a clear error, also at exit */
    int32_t after = wps_client_stop(exit_client, 100);
    printf("%s stop=%s after_free=%s detail=%s\n", where, wps_result_name(rc), wps_result_name(after),
           m ? "yes" : "none");
    fflush(stdout);
}

static void at_exit(void) { stop_and_free("atexit"); }

static void key_destructor(void *value) {
    (void)value;
    stop_and_free("key-destructor");
}

static void *thread_with_key(void *arg) {
    pthread_key_t *key = arg;
    char *u = mint_url(HUB, "exiter", ALL_ROLES, 3600);
    exit_client = started_client(u, NULL, NULL);
    free(u);
    if (exit_client && wps_client_get_fd(exit_client) == -1) pthread_setspecific(*key, exit_client);
    return NULL;
}

/* Runs in a child process (this binary started again): sets up the exit path and exits. A
 * failed call first gives the thread a last error, which exit destroys before the handlers run. */
static int exit_child(const char *mode) {
    if (strcmp(mode, "atexit") == 0) {
        char *u = mint_url(HUB, "exiter", ALL_ROLES, 3600);
        exit_client = started_client(u, NULL, NULL);
        free(u);
        if (!exit_client || wps_client_get_fd(exit_client) != -1) return 3;
        atexit(at_exit);
        return 0;
    }
    pthread_key_t key;
    pthread_key_create(&key, key_destructor);
    pthread_t t;
    pthread_create(&t, NULL, thread_with_key, &key);
    pthread_join(t, NULL);
    return exit_client ? 0 : 3;
}

static int run_exit_child(const char *mode, char *out, size_t cap) {
    int fds[2];
    CHECK(pipe(fds) == 0, "pipe");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    char *argv[] = {"test_teardown", "--exit-child", (char *)mode, NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    CHECK(rc == 0, "spawn: %s", strerror(rc));
    size_t n = 0;
    ssize_t got;
    while (n + 1 < cap && (got = read(fds[0], out + n, cap - 1 - n)) > 0) n += (size_t)got;
    out[n] = 0;
    close(fds[0]);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s child: %s %d; output: %s", mode,
          WIFEXITED(status) ? "exit status" : "signal", WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), out);
    return 0;
}

static int test_stop_and_free_in_an_atexit_handler_exit_normally(void) {
    char out[512];
    if (run_exit_child("atexit", out, sizeof out)) return 1;
    CHECK(strstr(out, "atexit stop=WPS_OK after_free=WPS_ERR_INVALID_HANDLE"), "output: %s", out);
    return 0;
}

static int test_stop_and_free_in_a_thread_key_destructor_exit_normally(void) {
    char out[512];
    if (run_exit_child("key", out, sizeof out)) return 1;
    CHECK(strstr(out, "key-destructor stop=WPS_OK after_free=WPS_ERR_INVALID_HANDLE"), "output: %s", out);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--exit-child") == 0) return exit_child(argv[2]);
    if (!have_emulator()) { printf("teardown: needs WPS_TEST_CONNSTR (run scripts/c-tests.sh)\n"); return 1; }
    static const test_case tests[] = {
        {"callbacks_of_two_clients_free_each_other", test_callbacks_of_two_clients_free_each_other},
        {"callbacks_of_two_poll_clients_free_each_other", test_callbacks_of_two_poll_clients_free_each_other},
        {"three_poll_clients_free_each_other_in_a_cycle", test_three_poll_clients_free_each_other_in_a_cycle},
        {"url_providers_free_each_others_clients", test_url_providers_free_each_others_clients},
        {"free_is_bounded_by_the_shutdown_timeout_with_a_slow_url_provider",
         test_free_is_bounded_by_the_shutdown_timeout_with_a_slow_url_provider},
        {"calls_racing_with_free_complete_once_and_no_user_code_runs_after_it",
         test_calls_racing_with_free_complete_once_and_no_user_code_runs_after_it},
        {"stop_and_free_in_an_atexit_handler_exit_normally", test_stop_and_free_in_an_atexit_handler_exit_normally},
        {"stop_and_free_in_a_thread_key_destructor_exit_normally", test_stop_and_free_in_a_thread_key_destructor_exit_normally},
    };
    return run_tests("teardown", tests, sizeof tests / sizeof tests[0], argc, argv);
}
