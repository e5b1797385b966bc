// s3rver-run.js - run @20minutes/s3rver for StreamHouse tests (started by
// tests/tools/s3-start.sh; not meant to be run by hand).
//
//   node s3rver-run.js --dir DIR --port-min N --port-max M --bucket B \
//        --access-key-id ID --secret-file FILE --ready-file FILE [--port N] [--verbose]
//
// What it adds to the stock s3rver command line:
//  - the credentials: s3rver ships one fixed key pair ("S3RVER"); we drop it
//    and register the one given, so a client with any other secret gets
//    SignatureDoesNotMatch (s3rver verifies SigV4 signatures). The secret is
//    read from a file so it never shows in `ps`.
//  - listing order: s3rver walks its directory tree, which yields "x/1"
//    before "x-1" although S3 lists keys in UTF-8 byte order ('-' < '/'),
//    and pages with a continuation token that assumes that order. We sort
//    the keys before paging, as S3 does, so tests check the real contract.
//  - atomic puts: s3rver streams a body straight into the object's file, so
//    a client that dies mid-upload leaves a truncated object that GET and
//    LIST show. S3 shows the old object or the whole new one; so do we, by
//    writing to a temporary name and renaming once the body is complete.
//  - a port from a range, bound by the server itself (no check-then-bind
//    race), written with the pid to the ready file once it accepts.
//  - SIGTERM/SIGINT close the server and exit 0.
'use strict';

const fs = require('fs');
const http = require('http');
const path = require('path');

function parseArgs(argv) {
  const o = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const k = a.slice(2);
    if (k === 'verbose') { o.verbose = true; continue; }
    if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
    o[k] = argv[++i];
  }
  for (const k of ['dir', 'bucket', 'access-key-id', 'secret-file', 'ready-file'])
    if (!o[k]) throw new Error(`--${k} is required`);
  return o;
}

const opts = parseArgs(process.argv.slice(2));
const S3rver = require('@20minutes/s3rver');
const AWSAccount = require('@20minutes/s3rver/lib/models/account');
const FilesystemStore = require('@20minutes/s3rver/lib/stores/filesystem');

const secret = fs.readFileSync(opts['secret-file'], 'utf8').trim();
const account = AWSAccount.DUMMY_ACCOUNT;
account.revokeAccessKey('S3RVER');
account.createKeyPair(opts['access-key-id'], secret);

// Byte-ordered listing: collect every matching key, sort by UTF-8 bytes,
// then apply start-after and max-keys, as S3 does.
const origList = FilesystemStore.prototype.listObjects;
FilesystemStore.prototype.listObjects = async function (bucket, options) {
  const all = await origList.call(this, bucket, {
    ...options,
    startAfter: '',
    maxKeys: Infinity,
  });
  const bytes = (k) => Buffer.from(k, 'utf8');
  const after = options.startAfter || '';
  const max = options.maxKeys === undefined ? Infinity : options.maxKeys;
  const objects = all.objects
    .filter((o) => Buffer.compare(bytes(o.key), bytes(after)) > 0)
    .sort((a, b) => Buffer.compare(bytes(a.key), bytes(b.key)));
  return {
    objects: objects.slice(0, max),
    commonPrefixes: all.commonPrefixes,
    isTruncated: objects.length > max,
  };
};

// s3rver's own listen() reports a bind failure as an unhandled 'error'
// event (the process dies); this one rejects, so the next port is tried.
S3rver.prototype.listen = function (port, address) {
  const server = http.createServer();
  server.on('request', this.callback());
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, address, () => {
      server.removeListener('error', reject);
      resolve(server);
    });
  });
};

const origPutContent = FilesystemStore.prototype.putContent;
let tmpSeq = 0;
FilesystemStore.prototype.putContent = async function (objectPath, content) {
  // listing only shows names ending in "._S3rver_object": this one is hidden
  const tmp = `${objectPath}.${process.pid}.${++tmpSeq}.uploading`;
  try {
    const result = await origPutContent.call(this, tmp, content);
    await fs.promises.rename(tmp, objectPath);
    return result;
  } catch (err) {
    await fs.promises.rm(tmp, { force: true });
    throw err;
  }
};

async function listen() {
  const lo = Number(opts['port-min'] || 55500);
  const hi = Number(opts['port-max'] || 55599);
  const ports = opts.port ? [Number(opts.port)] : [];
  if (!opts.port) {
    for (let p = lo; p <= hi; p++) ports.push(p);
    ports.sort(() => Math.random() - 0.5);
  }
  for (const port of ports) {
    const server = new S3rver({
      address: '127.0.0.1',
      port,
      directory: opts.dir,
      silent: !opts.verbose,
      // "<bucket>.s3.localhost" reaches the bucket virtual-hosted style
      serviceEndpoint: 'localhost',
      configureBuckets: [{ name: opts.bucket, configs: [] }],
    });
    try {
      const addr = await server.run();
      return { server, port: addr.port };
    } catch (err) {
      if (err.code !== 'EADDRINUSE') throw err;
    }
  }
  throw new Error(opts.port ? `port ${opts.port} is in use` : `no free port in ${lo}-${hi}`);
}

listen().then(({ server, port }) => {
  // keep-alive connections would hold close() open: drop them
  const stop = () => {
    server.httpServer.close(() => process.exit(0));
    server.httpServer.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  const tmp = `${opts['ready-file']}.tmp`;
  fs.writeFileSync(tmp, `${port} ${process.pid}\n`);
  fs.renameSync(tmp, opts['ready-file']);
  console.log(`s3rver ${require('@20minutes/s3rver/package.json').version} on 127.0.0.1:${port}, bucket ${opts.bucket}, data in ${path.resolve(opts.dir)}`);
}).catch((err) => {
  console.error(`s3rver-run: ${err.message}`);
  process.exit(1);
});
