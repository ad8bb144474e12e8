/*
 * replay.c - run a fuzz target without libFuzzer: every given file as it
 * is, then deterministic random mutations of it.  Built with the project's
 * compiler (gcc or clang), so the loaders' robustness is tested on every
 * build even where libFuzzer is missing.
 *
 *     replay MUTATIONS DIR[=PREFIX]...
 *
 * Each DIR contributes its regular files whose names start with PREFIX (all
 * when no PREFIX).  A file gets MUTATIONS mutants; the target aborts when a
 * loader breaks its contract (see fuzz_common.h), failing the test.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t rng_state;

static uint64_t next(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static size_t below(size_t n) { return n == 0 ? 0 : (size_t)(next() % n); }

#define MAX_FILE 65536

static const char *const tokens[] = {
    ",", "\n", "\r\n", " ", "'", "\"", "(", ")", "{", "}", ":", "-", "0", "9", "1e999",
    "nan", "inf", "True", "False", "'descr'", "'shape'", "<f8", "|u1", ">f4",
    "99999999999999999999", "\x00", "\xff\xff\xff\xff", "\x1f\x8b",
};
static const uint32_t words[] = {0, 1, 2, 3, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF,
                                 0x80000000u, 0xFFFFFFFFu, 28, 784, 60000};

/* One random edit of buf[0..*len) within capacity MAX_FILE. */
static void mutate_once(uint8_t *buf, size_t *len)
{
    size_t n = *len;
    switch (next() % 8) {
    case 0: /* flip a bit */
        if (n) buf[below(n)] ^= (uint8_t)(1u << (next() % 8));
        break;
    case 1: { /* an interesting byte */
        static const uint8_t bytes[] = {0, 1, 0x7f, 0x80, 0xff, '\n', ',', '0'};
        if (n) buf[below(n)] = next() % 2 ? bytes[next() % sizeof bytes] : (uint8_t)next();
        break;
    }
    case 2: /* truncate */
        *len = below(n + 1);
        break;
    case 3: { /* insert random bytes */
        size_t k = 1 + below(8), at = below(n + 1);
        if (n + k > MAX_FILE) break;
        memmove(buf + at + k, buf + at, n - at);
        for (size_t i = 0; i < k; i++) buf[at + i] = (uint8_t)next();
        *len = n + k;
        break;
    }
    case 4: { /* delete a range */
        if (!n) break;
        size_t at = below(n), k = 1 + below(n - at);
        memmove(buf + at, buf + at + k, n - at - k);
        *len = n - k;
        break;
    }
    case 5: { /* overwrite a 32-bit word, either endianness */
        if (n < 4) break;
        uint32_t w = words[next() % (sizeof words / sizeof words[0])];
        size_t at = below(n - 3);
        int big = (int)(next() % 2);
        for (int i = 0; i < 4; i++)
            buf[at + i] = (uint8_t)(w >> (big ? 24 - 8 * i : 8 * i));
        break;
    }
    case 6: { /* insert a token */
        const char *t = tokens[next() % (sizeof tokens / sizeof tokens[0])];
        size_t k = strlen(t) ? strlen(t) : 1, at = below(n + 1);
        if (n + k > MAX_FILE) break;
        memmove(buf + at + k, buf + at, n - at);
        memcpy(buf + at, t, k);
        *len = n + k;
        break;
    }
    default: { /* duplicate a chunk at the end */
        if (!n) break;
        size_t at = below(n), k = 1 + below(n - at);
        if (n + k > MAX_FILE) break;
        memmove(buf + n, buf + at, k);
        *len = n + k;
        break;
    }
    }
}

static long run_file(const char *path, long mutations, uint64_t seed)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        exit(1);
    }
    static uint8_t orig[MAX_FILE], buf[MAX_FILE];
    size_t len = fread(orig, 1, MAX_FILE, f);
    fclose(f);
    LLVMFuzzerTestOneInput(orig, len);
    rng_state = seed;
    for (long m = 0; m < mutations; m++) {
        size_t n = len;
        memcpy(buf, orig, len);
        int edits = 1 + (int)(next() % 4);
        for (int e = 0; e < edits; e++) mutate_once(buf, &n);
        LLVMFuzzerTestOneInput(buf, n);
    }
    return 1 + mutations;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s MUTATIONS DIR[=PREFIX]...\n", argv[0]);
        return 2;
    }
    long mutations = strtol(argv[1], NULL, 10);
    long runs = 0, files = 0;
    for (int a = 2; a < argc; a++) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", argv[a]);
        char *eq = strchr(dir, '=');
        const char *prefix = "";
        if (eq != NULL) {
            *eq = '\0';
            prefix = eq + 1;
        }
        DIR *d = opendir(dir);
        if (d == NULL) {
            fprintf(stderr, "replay: cannot open directory %s\n", dir);
            return 1;
        }
        char *names[1024];
        int count = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL && count < 1024)
            if (e->d_name[0] != '.' && strncmp(e->d_name, prefix, strlen(prefix)) == 0)
                names[count++] = strdup(e->d_name);
        closedir(d);
        qsort(names, (size_t)count, sizeof names[0], cmp_str); /* deterministic order */
        for (int i = 0; i < count; i++) {
            char path[8192];
            snprintf(path, sizeof path, "%s/%s", dir, names[i]);
            runs += run_file(path, mutations, 0x5EED0000u + (uint64_t)files);
            files++;
            free(names[i]);
        }
    }
    if (files == 0) {
        fprintf(stderr, "replay: no input files\n");
        return 1;
    }
    printf("replay: %ld files, %ld inputs, every contract held\n", files, runs);
    return 0;
}
