import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isDynamicName } from './dynamic-name.js';

/** [confirmed name, client address, why] — the patterns of access networks. */
const DYNAMIC: [string, string, string][] = [
  ['bzq-218-1-51.cable.example.com', '51.1.218.7', 'three octets reversed'],
  ['dsl-81-2-3-4.example.net', '81.2.3.4', 'dashed'],
  ['host-5-6-7-8.pool.example.org', '5.6.7.8', 'dashed with keywords'],
  ['4-3-2-81.dyn.example.net', '81.2.3.4', 'dashed, reversed'],
  ['c0a80001.example.com', '192.168.0.1', 'hex'],
  ['dhcp-0100a8c0.example.com', '192.168.0.1', 'hex, reversed'],
  ['ppp-81-2-3-4.isp.example', '81.2.3.4', 'dashed'],
  ['pool-71-105-52-23.lsanca.fios.verizon.net', '71.105.52.23', 'Verizon FiOS'],
  ['c-73-15-2-1.hsd1.ca.comcast.net', '73.15.2.1', 'Comcast'],
  ['cpe-76-90-12-1.socal.res.rr.com', '76.90.12.1', 'Charter'],
  ['ip68-5-3-2.oc.oc.cox.net', '68.5.3.2', 'letters glued to the first octet'],
  ['host86-160-82-121.range86-160.btcentralplus.com', '86.160.82.121', 'BT'],
  ['dsl-189-130-25-62-dyn.prod-infinitum.com.mx', '189.130.25.62', 'Telmex'],
  ['ec2-54-1-2-3.compute-1.amazonaws.com', '54.1.2.3', 'a cloud instance'],
  ['adsl-010-020-030-040.example.net', '10.20.30.40', 'zero-padded'],
  ['109_70_15_2.dhcp.example.org', '109.70.15.2', 'underscored'],
  ['4.3.2.81.in-addr.example.net', '81.2.3.4', 'dotted, reversed'],
  ['81.2.3.static.example.net', '81.2.3.4', 'three octets dotted'],
  ['081002003004.example.com', '81.2.3.4', 'twelve zero-padded digits'],
  ['u1359086340.example.com', '81.2.3.4', 'the address as one decimal number'],
  ['51-1.cable.example.com', '10.9.1.51', 'a keyword and two numbers'],
  ['dyn-2-3.example.net', '198.51.100.9', 'a keyword and two numbers'],
  ['broadband-5-6.example.org', '203.0.113.5', 'a keyword and two numbers'],
  ['client-77-12.example.com', '203.0.113.77', 'a keyword and two numbers'],
  ['dialup12-3.isp.example', '192.0.2.40', 'a keyword and two numbers'],
  ['94-66-22-11.adsl.example.gr', '94.66.22.11', 'dashed'],
  ['DSL-81-2-3-4.Example.NET', '81.2.3.4', 'upper case'],
  ['x1-6-00-11-22-33-44-55.dyn.example.net', '2001:db8::1', 'IPv6: a keyword and numbers'],
  ['ppp-81-2-3-4.isp.example', '::ffff:81.2.3.4', 'an IPv4-mapped address'],
];

/** Mail servers and other static names with numbers in them. */
const STATIC: [string, string][] = [
  ['mail2.example.com', '81.2.3.4'],
  ['mx01.example.net', '192.0.2.1'],
  ['smtp-out-3.example.org', '192.0.2.3'],
  ['o1.email.example.com', '198.51.100.1'],
  ['mta-81-2.example.com', '192.0.2.10'],
  ['outbound-10.mailer.example', '203.0.113.10'],
  ['mail-yw1-f170.google.com', '209.85.128.170'],
  ['mail-ed1-f41.google.com', '209.85.208.41'],
  ['a8-12.smtp-out.amazonses.com', '54.240.8.12'],
  ['b224-13.smtp-out.eu-west-1.amazonses.com', '54.240.224.13'],
  ['mail181-3.suw21.mandrillapp.com', '198.2.181.3'],
  ['mail-dm6nam11on2040.outbound.protection.outlook.com', '40.107.223.40'],
  ['out-2.smtp.github.com', '192.30.252.2'],
  ['o11.sendgrid.net', '149.72.1.11'],
  ['mailout2.web.de', '212.227.15.2'],
  ['smtp1.example.org', '192.0.2.1'],
  ['relay03.isp.example', '192.0.2.3'],
  ['mx-2.mail.example.com', '192.0.2.2'],
  ['mail.163.com', '1.2.3.163'],
  ['mailhost1.example.com', '192.0.2.1'],
  ['web1.hosting.example', '192.0.2.1'],
  ['mx1.dyn.com', '192.0.2.1'],
  ['mail.dsl-provider.example', '192.0.2.4'],
  ['smtp.pool.example.org', '192.0.2.5'],
  ['client.example.com', '192.0.2.6'],
  ['mail-ip6.example.com', '192.0.2.6'],
  ['host10.example.test', '127.0.0.10'],
  ['mta5.am0.yahoodns.net', '67.195.204.5'],
  ['smtp-81-2.example.com', '81.2.99.99'],
  ['mx2.example.net', '2001:db8::2'],
];

test('dynamic names: every one detected', () => {
  const missed = DYNAMIC.filter(([name, ip]) => !isDynamicName(name, ip));
  assert.deepEqual(missed, []);
  assert.ok(DYNAMIC.length >= 20);
});

test('static names with numbers: none caught', () => {
  const caught = STATIC.filter(([name, ip]) => isDynamicName(name, ip));
  assert.deepEqual(caught, []);
  assert.ok(STATIC.length >= 20);
});

test("another address's numbers do not make a name dynamic", () => {
  assert.equal(isDynamicName('81-2-3-4.example.net', '81.2.9.5'), false);
  assert.equal(isDynamicName('81-2-3-4.example.net', '9.2.3.4'), true, 'three octets are enough');
  assert.equal(isDynamicName('c0a80002.example.com', '192.168.0.1'), false);
  assert.equal(isDynamicName('1-2.example.net', '1.2.3.4'), false, 'two octets alone');
});
