'use strict';

// Keeps a WatchRevocations stream open to the authority. When a stream
// opens, and after every failed attempt to open one, it calls onGap, because
// revocations made while no stream was open were missed and the caller must
// verify the sessions it holds.

const grpc = require('@grpc/grpc-js');

class RevocationWatch {
  // options: retryMs (first retry delay), maxRetryMs, log,
  // onRevocation(event), onGap().
  constructor(authority, options) {
    this.authority = authority;
    this.options = options;
    // epoch changes whenever a stream opens or ends, so that a caller can
    // tell whether it was open during the whole of an authority call.
    this.epoch = 0;
    this.stopped = false;
    this.call = null;
    this.retryTimer = null;
    this.delay = options.retryMs;
    this.attempts = 0;
  }

  start() {
    this.open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    if (this.call) {
      this.call.cancel();
    }
  }

  open() {
    if (this.stopped) {
      return;
    }
    const call = this.authority.client.WatchRevocations({}, this.authority.metadata());
    this.call = call;
    let opened = false;
    let ended = false;

    // The authority sends the headers once its subscription is in place, so
    // no revocation made after they arrive is missed.
    call.on('metadata', () => {
      opened = true;
      this.epoch++;
      this.attempts = 0;
      this.delay = this.options.retryMs;
      this.options.log.info('revocation stream open, verifying the sessions of connected sockets', {});
      this.options.onGap();
    });
    call.on('data', (event) => this.options.onRevocation(event));

    const finish = (error) => {
      if (ended) {
        return;
      }
      ended = true;
      if (opened) {
        this.epoch++;
      }
      if (this.stopped) {
        return;
      }
      this.attempts++;
      const wait = Math.round(this.delay * (0.5 + Math.random() / 2));
      const reason = error ? error.message : 'the stream ended';
      if (opened) {
        this.options.log.warn('revocation stream broke, reconnecting', { error: reason, retry_in_ms: wait });
      } else {
        this.options.log.warn('opening the revocation stream failed, retrying',
          { error: reason, attempt: this.attempts, retry_in_ms: wait });
        this.options.onGap();
      }
      this.retryTimer = setTimeout(() => this.open(), wait);
      this.delay = Math.min(this.delay * 2, this.options.maxRetryMs);
    };
    call.on('error', (error) => finish(error.code === grpc.status.CANCELLED && this.stopped ? null : error));
    call.on('end', () => finish(null));
  }
}

module.exports = { RevocationWatch };
