/*
 * sh_topics.c - the empty topic source used until the topic registry
 * exists, and Kafka's topic-name rule.
 *
 * Thread: loop thread. Ownership: nothing is allocated here.
 */
#include "broker/sh_topics.h"

static sh_err_t empty_list(void *ctx, sh_arena_t *arena, sh_topic_view_t **out,
                           int32_t *count)
{
    (void)ctx;
    (void)arena;
    *out = NULL;
    *count = 0;
    return SH_OK;
}

static sh_err_t empty_find(void *ctx, sh_arena_t *arena, sh_slice_t name,
                           sh_topic_view_t *out)
{
    (void)ctx;
    (void)arena;
    (void)name;
    (void)out;
    return SH_E_NOTFOUND;
}

static sh_err_t empty_find_id(void *ctx, sh_arena_t *arena, sh_uuid_t id,
                              sh_topic_view_t *out)
{
    (void)ctx;
    (void)arena;
    (void)id;
    (void)out;
    return SH_E_NOTFOUND;
}

const sh_topics_ops_t sh_topics_empty_ops = {
    .list = empty_list,
    .find = empty_find,
    .find_id = empty_find_id,
};

bool sh_topics_name_is_legal(sh_slice_t name)
{
    if (!name.ptr || name.len == 0 || name.len > 249)
        return false;
    if ((name.len == 1 && name.ptr[0] == '.') ||
        (name.len == 2 && name.ptr[0] == '.' && name.ptr[1] == '.'))
        return false;
    for (size_t i = 0; i < name.len; i++) {
        uint8_t ch = name.ptr[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
            return false;
    }
    return true;
}
