/*
 * CPU lists as taskset(1) and /sys/devices/system/cpu print them: "0-3,6"
 * (items separated by commas, blanks allowed after a comma; an item is a
 * CPU number or a range FIRST-LAST). The agent's `cpus` option is one.
 */
#ifndef EDGESYNC_CPU_LIST_H
#define EDGESYNC_CPU_LIST_H

#include <sched.h>
#include <stddef.h>

/* 0 with *set holding the list's CPUs, or -EINVAL with why filled in. */
int es_cpu_list_parse(const char *s, cpu_set_t *set, char *why, size_t wl);

/* Writes set as a list ("0-3,6"); returns what snprintf would. */
int es_cpu_list_format(const cpu_set_t *set, char *buf, size_t len);

#endif
