'use strict';

// Prometheus metrics of the middleware, with the names, types, labels,
// buckets and help texts of the Go adapters (adapter/metrics.go):
//
//   sockauth_adapter_sockets_connected            gauge: sockets connected and not closed
//   sockauth_adapter_sockets_authenticated        gauge: sockets authenticated now
//   sockauth_adapter_authentication_duration_seconds{outcome}
//                                                 histogram: authenticate events and
//                                                 handshakes that called the authority
//   sockauth_adapter_authentication_timeouts_total  counter
//   sockauth_adapter_rejections_total{code}       counter: unauthorized events sent and
//                                                 rejected handshakes, by code
//
// prom-client is an optional peer dependency: this module requires it only
// for an instance that is given a registry.

const { Codes } = require('./errors');

const OUTCOME_AUTHENTICATED = 'authenticated';
const OUTCOME_REJECTED = 'rejected';

const DURATION_BUCKETS = Object.freeze([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]);

const METRIC_NAMES = Object.freeze({
  connected: 'sockauth_adapter_sockets_connected',
  authenticated: 'sockauth_adapter_sockets_authenticated',
  duration: 'sockauth_adapter_authentication_duration_seconds',
  timeouts: 'sockauth_adapter_authentication_timeouts_total',
  rejections: 'sockauth_adapter_rejections_total'
});

// KNOWN_CODES are the codes whose rejection series exist from the start, so
// that rate() and alerts see a zero before the first rejection.
const KNOWN_CODES = Object.freeze(Object.values(Codes));

// Label names that metricLabels may not use: those of the metrics
// themselves, and le of the histogram buckets.
const RESERVED_LABELS = new Set(['outcome', 'code', 'le']);
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

// groups maps each prom-client Registry to the metrics that the instances
// exporting to it share, because a registry accepts one metric per name.
// Each instance owns the series of its metricLabels.
const groups = new WeakMap();

// noMetrics records nothing, for an instance without a registry.
const noMetrics = Object.freeze({
  observeAuthentication() {},
  rejected() {},
  close() {}
});

// createMetrics returns the metrics recorder of one instance. Without
// options.registry it returns a recorder that records nothing and loads no
// prom-client. socketCounts returns {waiting, authenticated}, the instance's
// socket counts, and is called at every scrape. It throws on an invalid
// registry or metricLabels option, and when another open instance already
// exports the same metricLabels to the registry.
function createMetrics(options, socketCounts) {
  const registry = options.registry;
  if (registry === undefined || registry === null) {
    if (options.metricLabels !== undefined && options.metricLabels !== null) {
      throw new Error('sockauth: invalid option metricLabels: it needs the registry option');
    }
    return noMetrics;
  }
  checkRegistry(registry);
  const labels = checkMetricLabels(options.metricLabels);
  const labelNames = Object.keys(labels).sort();

  let group = groups.get(registry);
  if (!group) {
    group = new MetricGroup(loadPromClient(), registry, labelNames);
    groups.set(registry, group);
  }
  return group.attach(labels, socketCounts);
}

// checkRegistry throws unless registry has the methods of a prom-client
// Registry that this module calls. It checks methods instead of instanceof,
// so that a registry of another copy of prom-client passes.
function checkRegistry(registry) {
  const methods = ['registerMetric', 'getSingleMetric', 'removeSingleMetric'];
  if (typeof registry === 'object' && methods.every((name) => typeof registry[name] === 'function')) {
    return;
  }
  const got = typeof registry === 'object' ? 'an object without the methods ' + methods.join(', ') : describe(registry);
  throw new Error('sockauth: invalid option registry: expected a prom-client Registry, such as ' +
    'new Registry() or register of require(\'prom-client\'), got ' + got);
}

// checkMetricLabels returns a copy of the metricLabels option, {} when it
// is absent, or throws when a name or value is invalid.
function checkMetricLabels(metricLabels) {
  if (metricLabels === undefined || metricLabels === null) {
    return {};
  }
  if (typeof metricLabels !== 'object' || Array.isArray(metricLabels)) {
    throw new Error('sockauth: invalid option metricLabels: expected an object of label names and string values, got ' +
      describe(metricLabels));
  }
  const labels = {};
  for (const [name, value] of Object.entries(metricLabels)) {
    if (!LABEL_NAME.test(name) || name.startsWith('__')) {
      throw new Error('sockauth: invalid option metricLabels: invalid label name ' + JSON.stringify(name) +
        ': must match [a-zA-Z_][a-zA-Z0-9_]* and not start with __');
    }
    if (RESERVED_LABELS.has(name)) {
      throw new Error('sockauth: invalid option metricLabels: label name ' + JSON.stringify(name) +
        ' is used by the metrics themselves');
    }
    if (typeof value !== 'string') {
      throw new Error('sockauth: invalid option metricLabels: value of label ' + name + ' must be a string, got ' +
        describe(value));
    }
    labels[name] = value;
  }
  return labels;
}

// describe names the type of an invalid option value for an error message.
function describe(value) {
  if (value === null) {
    return 'null';
  }
  if (Array.isArray(value)) {
    return 'an array';
  }
  if (typeof value === 'object') {
    return 'an object';
  }
  return typeof value + ' ' + String(value);
}

function loadPromClient() {
  try {
    return require('prom-client');
  } catch (error) {
    if (error.code === 'MODULE_NOT_FOUND') {
      throw new Error('sockauth: the registry option needs the prom-client package: run npm install prom-client (' +
        error.message.split('\n')[0] + ')');
    }
    throw error;
  }
}

// MetricGroup contains the five metrics of one registry and the open
// instances that record into them. Every instance of a group has the same
// label names.
class MetricGroup {
  constructor(promClient, registry, labelNames) {
    this.registry = registry;
    this.labelNames = labelNames;
    // members maps the key of each open instance's labels to its recorder.
    this.members = new Map();

    // A gauge's collect runs at every scrape, with the gauge as this, and
    // sets the series of every open instance from its socket counts.
    const group = this;
    const gauge = (name, help, valueOf) => new promClient.Gauge({
      name,
      help,
      labelNames,
      registers: [],
      collect() {
        for (const member of group.members.values()) {
          this.set(member.labels, valueOf(member.socketCounts()));
        }
      }
    });
    this.connected = gauge(METRIC_NAMES.connected,
      'Sockets connected to the adapter that it has not closed, authenticated or not.',
      (counts) => counts.waiting + counts.authenticated);
    this.authenticated = gauge(METRIC_NAMES.authenticated,
      'Sockets whose last authentication succeeded and whose token has not expired.',
      (counts) => counts.authenticated);
    this.duration = new promClient.Histogram({
      name: METRIC_NAMES.duration,
      help: 'Time from an authenticate event or handshake to its outcome, for those that called the authority, ' +
        'by outcome: authenticated or rejected.',
      buckets: DURATION_BUCKETS.slice(),
      labelNames: labelNames.concat('outcome'),
      registers: []
    });
    this.timeouts = new promClient.Counter({
      name: METRIC_NAMES.timeouts,
      help: 'Sockets disconnected because they did not authenticate within the auth timeout. ' +
        'Equal to the authentication_timeout rejections, kept as its own series for alerts.',
      labelNames,
      registers: []
    });
    this.rejections = new promClient.Counter({
      name: METRIC_NAMES.rejections,
      help: 'Unauthorized events sent and rejected handshakes, by code.',
      labelNames: labelNames.concat('code'),
      registers: []
    });

    const metrics = this.metrics();
    for (let i = 0; i < metrics.length; i++) {
      try {
        registry.registerMetric(metrics[i]);
      } catch (error) {
        for (const registered of metrics.slice(0, i)) {
          registry.removeSingleMetric(registered.name);
        }
        throw new Error('sockauth: registering metrics failed: ' + error.message);
      }
    }
  }

  metrics() {
    return [this.connected, this.authenticated, this.duration, this.timeouts, this.rejections];
  }

  // attach adds an instance with labels and returns its recorder.
  attach(labels, socketCounts) {
    const names = Object.keys(labels).sort();
    if (names.join(',') !== this.labelNames.join(',')) {
      throw new Error('sockauth: invalid option metricLabels: label names [' + names.join(', ') +
        '] differ from [' + this.labelNames.join(', ') + '] of the sockauth metrics already in this registry; ' +
        'every instance on one registry needs the same label names');
    }
    const key = JSON.stringify(names.map((name) => [name, labels[name]]));
    if (this.members.has(key)) {
      throw new Error('sockauth: invalid option metricLabels: another open instance already exports its metrics ' +
        'to this registry with the labels ' + JSON.stringify(labels) + '; give each instance distinct metricLabels');
    }
    const member = new InstanceMetrics(this, key, labels, socketCounts);
    this.members.set(key, member);
    return member;
  }

  // detach removes the series of member, and the metrics from the registry
  // when no instance remains.
  detach(member) {
    this.members.delete(member.key);
    if (this.members.size > 0) {
      this.connected.remove(member.labels);
      this.authenticated.remove(member.labels);
      this.timeouts.remove(member.labels);
      for (const outcome of [OUTCOME_AUTHENTICATED, OUTCOME_REJECTED]) {
        this.duration.remove(member.outcomeLabels[outcome]);
      }
      for (const labels of member.codeLabels.values()) {
        this.rejections.remove(labels);
      }
      return;
    }
    for (const metric of this.metrics()) {
      if (this.registry.getSingleMetric(metric.name) === metric) {
        this.registry.removeSingleMetric(metric.name);
      }
    }
    groups.delete(this.registry);
  }
}

// InstanceMetrics records the events of one instance into the series of
// its labels.
class InstanceMetrics {
  constructor(group, key, labels, socketCounts) {
    this.group = group;
    this.key = key;
    this.labels = labels;
    this.socketCounts = socketCounts;
    this.closed = false;
    this.outcomeLabels = {
      [OUTCOME_AUTHENTICATED]: Object.assign({}, labels, { outcome: OUTCOME_AUTHENTICATED }),
      [OUTCOME_REJECTED]: Object.assign({}, labels, { outcome: OUTCOME_REJECTED })
    };
    // codeLabels maps each code to the labels of its rejection series.
    this.codeLabels = new Map();

    for (const outcome of [OUTCOME_AUTHENTICATED, OUTCOME_REJECTED]) {
      group.duration.zero(this.outcomeLabels[outcome]);
    }
    for (const code of KNOWN_CODES) {
      group.rejections.inc(this.labelsOfCode(code), 0);
    }
    group.timeouts.inc(labels, 0);
    // The gauges get their values from socketCounts at each scrape.
  }

  // observeAuthentication records the duration of an authentication that
  // started at startedMs, a performance.now() value.
  observeAuthentication(startedMs, authenticated) {
    if (this.closed) {
      return;
    }
    const outcome = authenticated ? OUTCOME_AUTHENTICATED : OUTCOME_REJECTED;
    this.group.duration.observe(this.outcomeLabels[outcome], (performance.now() - startedMs) / 1000);
  }

  // rejected counts one unauthorized event or rejected handshake.
  rejected(code) {
    if (this.closed) {
      return;
    }
    this.group.rejections.inc(this.labelsOfCode(code), 1);
    if (code === Codes.AUTHENTICATION_TIMEOUT) {
      this.group.timeouts.inc(this.labels, 1);
    }
  }

  // close removes this instance's series, and stops recording.
  close() {
    if (this.closed) {
      return;
    }
    this.closed = true;
    this.group.detach(this);
  }

  labelsOfCode(code) {
    let labels = this.codeLabels.get(code);
    if (!labels) {
      labels = Object.assign({}, this.labels, { code: code });
      this.codeLabels.set(code, labels);
    }
    return labels;
  }
}

module.exports = { createMetrics };
