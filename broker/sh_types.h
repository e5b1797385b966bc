/*
 * sh_types.h - forward declarations of the broker's main types, so that
 * headers can mention each other's types without include cycles
 * (HAProxy's types-header habit).
 */
#ifndef SH_TYPES_H
#define SH_TYPES_H

typedef struct sh_broker sh_broker_t;
typedef struct sh_conn sh_conn_t;
typedef struct sh_request sh_request_t;
typedef struct sh_api_entry sh_api_entry_t;

#endif
