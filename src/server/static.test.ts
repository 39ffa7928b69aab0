/**
 * resolveAppPath against paths that try to leave the app directory: `..` plain and encoded
 * (once and twice), NUL bytes, backslashes, absolute URLs, and symlinks in the app directory
 * that point outside it (files and directories). A symlink that stays inside still works.
 */
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { tempDir } from '../test-support/tools.js'
import { resolveAppPath } from './static.js'

const tmp = tempDir('qbm-static-')
afterAll(() => tmp.cleanup())
const root = join(tmp.path, 'dist')
const outside = join(tmp.path, 'secret')
mkdirSync(join(root, 'assets'), { recursive: true })
mkdirSync(outside)
writeFileSync(join(root, 'index.html'), '<!doctype html>')
writeFileSync(join(root, 'assets', 'app.js'), '1')
writeFileSync(join(tmp.path, 'package.json'), '{}')
writeFileSync(join(outside, 'key.txt'), 'secret')
symlinkSync(join(outside, 'key.txt'), join(root, 'key.txt'))
symlinkSync(outside, join(root, 'secretdir'))
symlinkSync('assets/app.js', join(root, 'alias.js'))

describe('resolveAppPath', () => {
  it.each([
    ['/', 'index.html'],
    ['', 'index.html'],
    ['/index.html', 'index.html'],
    ['/index.html?x=1#y', 'index.html'],
    ['/assets/app.js', 'assets/app.js'],
    ['/assets%2fapp.js', 'assets/app.js'],
    ['/alias.js', 'assets/app.js'],
  ])('%j serves %s', (url, file) => {
    expect(resolveAppPath(root, url)).toBe(join(root, file))
  })

  it.each([
    '/../package.json',
    '/assets/../../package.json',
    '/%2e%2e/package.json',
    '/%2E%2E/package.json',
    '/..%2fpackage.json',
    '/%2e%2e%2fpackage.json',
    '/assets/%2e%2e/%2e%2e/package.json',
    '/%252e%252e/package.json',
    '/..\\package.json',
    '/%5c..%5cpackage.json',
    '/index.html%00.js',
    '/%',
    '/%e0%a4%a',
    '//' + join(tmp.path, 'package.json'),
    'http://127.0.0.1/../package.json',
    '/key.txt',
    '/secretdir/key.txt',
    '/secretdir/',
    '/assets',
    '/assets/',
    '/missing.js',
  ])('%j is not served', (url) => {
    expect(resolveAppPath(root, url)).toBeUndefined()
  })
})
