/*
 * flags.h - the command line of every example program (not part of the
 * library): one parser, so that all of them answer alike.
 *
 *   --help, -h            usage on stdout, exit status 0
 *   an unknown option,
 *   a missing or bad value,
 *   an extra argument     the usage's synopsis and "program: error: why" on
 *                         stderr, status 2
 *
 * Options are "--name VALUE" or "--name=VALUE".  Numbers must be whole
 * (no trailing characters) and inside the option's range.  A path (a PATH
 * option's value or a positional argument) that starts with '-' is refused,
 * so that a mistyped option never becomes a file name; "./-x" names such a
 * file.
 *
 * Plain C that also compiles as C++ (the C++ example links it).
 */
#ifndef EXAMPLES_FLAGS_H
#define EXAMPLES_FLAGS_H

#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum app_flag_kind {
    APP_FLAG_SWITCH, /* no value: sets *(int *)value to 1 */
    APP_FLAG_INT,    /* *(int64_t *)value, a whole number in [min, max] */
    APP_FLAG_REAL,   /* *(double *)value, a finite number in [min, max] */
    APP_FLAG_PATH    /* *(const char **)value = the argument itself */
} app_flag_kind;

typedef struct app_flag {
    const char *name; /* "--pool" */
    app_flag_kind kind;
    void *value;         /* written only when the option is given */
    const char *metavar; /* "N" in "--pool N" (unused for a switch) */
    const char *help;
    double min, max; /* accepted range of INT and REAL values */
} app_flag;

/* An optional argument without a name, filled in order. */
typedef struct app_positional {
    const char *metavar; /* "OUT.csv" */
    const char **value;  /* written only when the argument is given */
    const char *help;
} app_positional;

typedef struct app_cmdline {
    const char *summary; /* what the program does, one line */
    const app_flag *flags;
    int nflags;
    const app_positional *positionals; /* may be NULL */
    int npositionals;
} app_cmdline;

/* app_parse_flags' "go on" result (never an exit status). */
#define APP_FLAGS_RUN (-1)

/* Parse argv[1..argc-1] into the options' values.  Returns APP_FLAGS_RUN
   when the program should go on; otherwise the status main must return:
   0 after --help (usage printed on stdout), 2 after a bad command line (the
   synopsis and the reason printed on stderr). */
int app_parse_flags(const app_cmdline *cmd, int argc, char **argv);

/* The usage: a synopsis, the summary and one line per option. */
void app_print_usage(const app_cmdline *cmd, const char *argv0, FILE *f);

/* For a check across options after parsing: prints the synopsis and
   "program: error: MESSAGE" on stderr and returns 2, the status for main to
   return. */
int app_usage_error(const app_cmdline *cmd, const char *argv0, const char *message);

/* The flags every application shares: --quick and --smoke pick a smaller
   configuration, --out the directory of the result files. */
#define APP_FLAG_QUICK(var)                                                                    \
    {                                                                                          \
        "--quick", APP_FLAG_SWITCH, (var), NULL, "a compact configuration (minutes)", 0, 0     \
    }
#define APP_FLAG_SMOKE(var)                                                                    \
    {                                                                                          \
        "--smoke", APP_FLAG_SWITCH, (var), NULL, "a tiny configuration (seconds; the tests)",  \
            0, 0                                                                               \
    }
#define APP_FLAG_OUT(var)                                                                      \
    {                                                                                          \
        "--out", APP_FLAG_PATH, (var), "DIR", "where the CSV and JSON files go (created)", 0,  \
            0                                                                                  \
    }

/* app_parse_flags for an application, then the check that *quick and *smoke
   (the variables of APP_FLAG_QUICK and APP_FLAG_SMOKE) are not both set.
   Returns APP_FLAGS_RUN, or the status main must return. */
int app_parse_app_flags(const app_cmdline *cmd, int argc, char **argv, const int *quick,
                        const int *smoke);

#ifdef __cplusplus
}
#endif

#endif
