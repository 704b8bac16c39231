<!DOCTYPE html>
<html>
  <head>
    <meta charset="utf-8">
    <meta name="pypi:repository-version" content="{{api_version}}">
% if project.status != "active":
    <meta name="pypi:project-status" content="{{project.status}}">
% end
% if project.status_reason:
    <meta name="pypi:project-status-reason" content="{{project.status_reason}}">
% end
    <title>Links for {{project.normalized}}</title>
  </head>
  <body>
    <h1>Links for {{project.normalized}}</h1>
% for f in files:
    <a href="../../packages/{{quote(f.filename)}}{{fragment(f)}}"\\
% if f.requires_python:
 data-requires-python="{{f.requires_python}}"\\
% end
% if f.metadata_sha256:
 data-core-metadata="sha256={{f.metadata_sha256}}" data-dist-info-metadata="sha256={{f.metadata_sha256}}"\\
% end
% if f.yanked is not None:
 data-yanked="{{f.yanked}}"\\
% end
>{{f.filename}}</a><br>
% end
  </body>
</html>
